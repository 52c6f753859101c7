//! The few rtnetlink(7) requests become-root makes inside the new network namespace, where it
//! is root with CAP_NET_ADMIN: an address and a route for `--ipv6`, and the policy routing
//! that lets the forwarder keep a client's address (forward/transparent.rs). Messages are
//! built as bytes here and sent on a NETLINK_ROUTE socket made in the calling process's
//! network namespace (a netlink socket acts in the namespace it was made in).
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
};

const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWRULE: u16 = 32;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_HOST: u8 = 254;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;
const RT_TABLE_MAIN: u8 = 254;

const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_TABLE: u16 = 15;
const FRA_FWMASK: u16 = 16;
const FR_ACT_TO_TBL: u8 = 1;

fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => nix::libc::AF_INET as u8,
        IpAddr::V6(_) => nix::libc::AF_INET6 as u8,
    }
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    }
}

/// A message under construction: the fixed header of its kind, then attributes.
struct Message {
    kind: u16,
    flags: u16,
    body: Vec<u8>,
}

impl Message {
    fn new(kind: u16, header: &[u8]) -> Message {
        Message {
            kind,
            flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            body: header.to_vec(),
        }
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Message {
        let len = 4 + data.len();
        self.body.extend((len as u16).to_ne_bytes());
        self.body.extend(kind.to_ne_bytes());
        self.body.extend(data);
        while !self.body.len().is_multiple_of(4) {
            self.body.push(0);
        }
        self
    }

    fn bytes(&self, seq: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.body.len());
        out.extend(((16 + self.body.len()) as u32).to_ne_bytes());
        out.extend(self.kind.to_ne_bytes());
        out.extend(self.flags.to_ne_bytes());
        out.extend(seq.to_ne_bytes());
        out.extend(0u32.to_ne_bytes());
        out.extend(&self.body);
        out
    }
}

/// The error of an NLMSG_ERROR reply (0: an acknowledgement), if `reply` is one.
fn ack_of(reply: &[u8]) -> Option<i32> {
    let kind = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if kind != NLMSG_ERROR {
        return None;
    }
    Some(i32::from_ne_bytes(reply.get(16..20)?.try_into().ok()?))
}

/// A NETLINK_ROUTE socket in the calling process's network namespace.
pub struct Rtnl {
    socket: OwnedFd,
    seq: u32,
}

impl Rtnl {
    pub fn open() -> nix::Result<Rtnl> {
        let socket = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        Ok(Rtnl { socket, seq: 0 })
    }

    /// Send one request and wait for its acknowledgement.
    fn request(&mut self, message: Message) -> nix::Result<()> {
        self.seq += 1;
        let kernel = NetlinkAddr::new(0, 0);
        sendto(
            self.socket.as_raw_fd(),
            &message.bytes(self.seq),
            &kernel,
            MsgFlags::empty(),
        )?;
        let mut reply = [0u8; 4096];
        loop {
            let n = recv(self.socket.as_raw_fd(), &mut reply, MsgFlags::empty())?;
            let seq = reply
                .get(8..12)
                .map(|s| u32::from_ne_bytes(s.try_into().unwrap()));
            if seq != Some(self.seq) {
                continue;
            }
            return match ack_of(&reply[..n]) {
                Some(0) => Ok(()),
                Some(e) => Err(Errno::from_raw(-e)),
                None => Err(Errno::EPROTO),
            };
        }
    }

    /// `ip addr add ADDR/PREFIX dev IFINDEX nodad`: usable at once, with no duplicate
    /// address detection to wait for.
    pub fn add_address(&mut self, ifindex: u32, ip: IpAddr, prefix: u8) -> nix::Result<()> {
        let mut header = vec![family(ip), prefix, 0, RT_SCOPE_UNIVERSE];
        header.extend(ifindex.to_ne_bytes());
        let message = Message::new(RTM_NEWADDR, &header)
            .attr(IFA_LOCAL, &octets(ip))
            .attr(IFA_ADDRESS, &octets(ip))
            .attr(IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes());
        self.request(message)
    }

    /// `ip route add default via GATEWAY dev IFINDEX`.
    pub fn add_default_route(&mut self, ifindex: u32, gateway: IpAddr) -> nix::Result<()> {
        let header = route_header(
            family(gateway),
            RT_TABLE_MAIN,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        );
        let message = Message::new(RTM_NEWROUTE, &header)
            .attr(RTA_GATEWAY, &octets(gateway))
            .attr(RTA_OIF, &ifindex.to_ne_bytes());
        self.request(message)
    }

    /// `ip route add local ANY/0 dev IFINDEX table TABLE`: every destination is this host's,
    /// in that table.
    pub fn add_local_default(&mut self, v6: bool, ifindex: u32, table: u32) -> nix::Result<()> {
        let fam = if v6 {
            nix::libc::AF_INET6
        } else {
            nix::libc::AF_INET
        } as u8;
        let header = route_header(fam, 0, RT_SCOPE_HOST, RTN_LOCAL);
        let zero = if v6 { vec![0u8; 16] } else { vec![0u8; 4] };
        let message = Message::new(RTM_NEWROUTE, &header)
            .attr(RTA_DST, &zero)
            .attr(RTA_TABLE, &table.to_ne_bytes())
            .attr(RTA_OIF, &ifindex.to_ne_bytes());
        self.request(message)
    }

    /// `ip [-6] rule add fwmark MARK lookup TABLE priority PRIORITY`.
    pub fn add_mark_rule(
        &mut self,
        v6: bool,
        mark: u32,
        table: u32,
        priority: u32,
    ) -> nix::Result<()> {
        let fam = if v6 {
            nix::libc::AF_INET6
        } else {
            nix::libc::AF_INET
        } as u8;
        // struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags.
        let mut header = vec![fam, 0, 0, 0, 0, 0, 0, FR_ACT_TO_TBL];
        header.extend(0u32.to_ne_bytes());
        let message = Message::new(RTM_NEWRULE, &header)
            .attr(FRA_FWMARK, &mark.to_ne_bytes())
            .attr(FRA_FWMASK, &u32::MAX.to_ne_bytes())
            .attr(FRA_PRIORITY, &priority.to_ne_bytes())
            .attr(FRA_TABLE, &table.to_ne_bytes());
        self.request(message)
    }
}

/// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
fn route_header(family: u8, table: u8, scope: u8, kind: u8) -> Vec<u8> {
    let mut header = vec![family, 0, 0, 0, table, RTPROT_STATIC, scope, kind];
    header.extend(0u32.to_ne_bytes());
    header
}

#[cfg(test)]
mod tests {

    use super::{FRA_TABLE, Message, NLMSG_ERROR, RTM_NEWRULE, ack_of};

    #[test]
    fn messages_are_laid_out_as_the_kernel_reads_them() {
        let m = Message::new(RTM_NEWRULE, &[2, 0, 8, 0, 0, 0, 0, 1, 0, 0, 0, 0])
            .attr(3, b"lo\0")
            .attr(FRA_TABLE, &7u32.to_ne_bytes());
        let bytes = m.bytes(9);
        // 16 of header, 12 of fib_rule_hdr, 8 for "lo\0" padded, 8 for the table.
        assert_eq!(bytes.len(), 44);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 44);
        assert_eq!(
            u16::from_ne_bytes(bytes[4..6].try_into().unwrap()),
            RTM_NEWRULE
        );
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 9);
        assert_eq!(&bytes[28..35], &[7, 0, 3, 0, b'l', b'o', 0]);
        assert!(bytes.len().is_multiple_of(4));
    }

    #[test]
    fn acknowledgements_and_errors_are_told_apart() {
        let mut ack = vec![0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(ack_of(&ack), Some(0));
        ack[16..20].copy_from_slice(&(-17i32).to_ne_bytes());
        assert_eq!(ack_of(&ack), Some(-17));
        ack[4..6].copy_from_slice(&16u16.to_ne_bytes());
        assert_eq!(ack_of(&ack), None);
    }
}
