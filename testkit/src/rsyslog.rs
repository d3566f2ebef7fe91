//! A real rsyslog (Debian's `rsyslog`) in the foreground with its own
//! config, socket, pid file and work directory, fed by `logger`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

pub struct Rsyslog {
    child: Child,
    /// The socket `logger` writes to.
    pub socket: PathBuf,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts rsyslogd in `dir` with its own input socket and `actions` (config
/// text: modules, templates, actions); returns once the socket exists.
pub async fn start(dir: &Path, actions: &str) -> Rsyslog {
    let socket = dir.join("log.sock");
    let config = dir.join("rsyslog.conf");
    let text = format!(
        "global(workDirectory=\"{dir}\")\nmodule(load=\"imuxsock\" SysSock.Use=\"off\")\ninput(type=\"imuxsock\" Socket=\"{socket}\")\n{actions}",
        dir = dir.display(),
        socket = socket.display(),
    );
    std::fs::write(&config, text).expect("rsyslog config");
    let child = Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&config)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .spawn()
        .expect("rsyslogd runs (Debian's rsyslog package; scripts/test installs it)");
    let waiting = socket.clone();
    crate::eventually("rsyslog's socket", || {
        let exists = waiting.exists();
        async move { exists.then_some(()) }
    })
    .await;
    Rsyslog { child, socket }
}

impl Rsyslog {
    /// Writes a line with `logger -t tag -p priority`.
    pub fn log(&self, tag: &str, priority: &str, message: &str) {
        let sent = Command::new("logger")
            .args(["-u", self.socket.to_str().expect("path"), "-t", tag, "-p", priority, message])
            .status()
            .expect("logger runs");
        assert!(sent.success(), "logger");
    }
}
