//! Sessions: `--list`, as a table or JSON.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use super::{Record, StateDir, state_dir_location, utc};
use crate::error::Error;

// ---- --list ---------------------------------------------------------------------------------

pub(super) fn list(json: bool) -> Result<(), Error> {
    let (path, sessions) = match StateDir::open(false)? {
        None => (state_dir_location(), Vec::new()),
        Some(dir) => {
            let sessions = dir.sessions()?;
            (dir.path, sessions)
        }
    };
    let text = if json {
        render_json(&path, &sessions)
    } else {
        render_table(&sessions)
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::sys("writing the list", crate::sys::io_errno(&e)))
}

/// The text table of `--list`: a header, then one line per session.
pub fn render_table(sessions: &[Record]) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "PID".into(),
        "CREATED".into(),
        "NAMESPACES".into(),
        "NET".into(),
        "PORTS".into(),
        "STATUS".into(),
    ]];
    for s in sessions {
        let kinds: Vec<&str> = s.namespaces.iter().map(|(k, _)| k.as_str()).collect();
        rows.push([
            s.name.clone(),
            match (&s.ended, s.holder) {
                (None, Some(h)) => h.pid.to_string(),
                _ => "-".into(),
            },
            if s.created == 0 {
                "starting".into()
            } else {
                utc(s.created)
            },
            if kinds.is_empty() {
                "-".into()
            } else {
                kinds.join(",")
            },
            s.net.clone().unwrap_or_else(|| "-".into()),
            if s.ports.is_empty() {
                "-".into()
            } else {
                s.ports.join(",")
            },
            s.status(),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The JSON of `--list --json`: `{"state_dir": ..., "sessions": [...]}`.
pub fn render_json(dir: &Path, sessions: &[Record]) -> String {
    use crate::json::json_string;
    let path = |p: &Path| json_string(&p.display().to_string());
    let mut out = format!("{{\"state_dir\":{},\"sessions\":[", path(dir));
    for (i, s) in sessions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let namespaces: Vec<String> = s
            .namespaces
            .iter()
            .map(|(kind, ino)| format!("{}:{ino}", json_string(kind)))
            .collect();
        let log = if s.detached {
            path(&dir.join(StateDir::log_file(&s.name)))
        } else {
            "null".into()
        };
        let _ = write!(
            out,
            "{{\"name\":{},\"pid\":{},\"supervisor_pid\":{},\"created\":{},\"created_unix\":{},\
             \"namespaces\":{{{}}},\"net\":{},\"net_down\":{},\"ports\":[{}],\"cgroup\":{},\
             \"limits\":{},\"detached\":{},\"containers\":{},\"status\":{},\"ended\":{},\
             \"state_file\":{},\"log\":{log}}}",
            json_string(&s.name),
            match (&s.ended, s.holder) {
                (None, Some(h)) => h.pid.to_string(),
                _ => "null".into(),
            },
            s.supervisor.pid,
            if s.created == 0 {
                "null".into()
            } else {
                json_string(&utc(s.created))
            },
            s.created,
            namespaces.join(","),
            s.net.as_deref().map_or("null".into(), json_string),
            s.net_down.as_deref().map_or("null".into(), json_string),
            s.ports
                .iter()
                .map(|p| json_string(p))
                .collect::<Vec<_>>()
                .join(","),
            s.cgroup.as_deref().map_or("null".into(), json_string),
            s.limits.as_deref().map_or("null".into(), json_string),
            s.detached,
            s.containers
                .as_ref()
                .map_or("null".into(), |c| json_string(&c.map)),
            json_string(&s.status()),
            s.ended.as_deref().map_or("null".into(), json_string),
            path(&dir.join(StateDir::state_file(&s.name))),
        );
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Record, render_json, render_table};
    use crate::session::Containers;
    use crate::session::record::tests::record;

    #[test]
    fn list_renderings() {
        let dir = Path::new("/run/user/1000/become-root");
        let table = render_table(&[record()]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME   PID  CREATED "), "{table}");
        assert!(
            lines[1].contains(
                "build  11   2023-11-14T22:13:20Z  user,mnt    slirp4netns  127.0.0.1:8080->80/tcp"
            ),
            "{table}"
        );
        assert!(lines[1].ends_with("  running"), "{table}");
        let mut down = record();
        down.net_down = Some("slirp4netns was killed by signal 9".into());
        assert!(
            render_table(&[down.clone()])
                .lines()
                .nth(1)
                .unwrap()
                .ends_with("  network down: slirp4netns was killed by signal 9"),
            "{}",
            render_table(&[down.clone()])
        );
        assert_eq!(Record::parse(&down.render()), Ok(down));
        assert_eq!(render_table(&[]).lines().count(), 1, "a header only");
        let mut ended = record();
        ended.ended = Some("exited 3".into());
        let row = render_table(&[ended.clone()]);
        let row = row.lines().nth(1).unwrap();
        assert!(row.starts_with("build  -  "), "no pid once ended: {row}");
        assert!(row.ends_with("  ended: exited 3"), "{row}");
        assert!(render_json(dir, &[ended]).contains("\"pid\":null,"));
        let mut podman = record();
        podman.containers = Some(Containers {
            map: "auto".into(),
            home: None,
            made_with: String::new(),
        });
        let row = render_table(&[podman.clone()]);
        assert!(row.ends_with("  running (containers)\n"), "{row}");
        let json = render_json(dir, &[podman]);
        assert!(json.contains("\"containers\":\"auto\","), "{json}");
        let json = render_json(dir, &[record()]);
        assert_eq!(
            json,
            "{\"state_dir\":\"/run/user/1000/become-root\",\"sessions\":[{\"name\":\"build\",\
             \"pid\":11,\"supervisor_pid\":10,\"created\":\"2023-11-14T22:13:20Z\",\
             \"created_unix\":1700000000,\"namespaces\":{\"user\":4026532001,\"mnt\":4026532002},\
             \"net\":\"slirp4netns\",\"net_down\":null,\"ports\":[\"127.0.0.1:8080->80/tcp\"],\
             \"cgroup\":null,\"limits\":null,\"detached\":true,\"containers\":null,\
             \"status\":\"running\",\"ended\":null,\
             \"state_file\":\"/run/user/1000/become-root/build.session\",\
             \"log\":\"/run/user/1000/become-root/build.log\"}]}\n"
        );
    }
}
