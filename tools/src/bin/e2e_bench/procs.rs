//! Part of the e2e benchmark (tools/src/bin/e2e_bench/main.rs).

#[allow(unused_imports)]
use super::*;

// === processes: CPU time, connections ===

#[derive(Clone, Copy, Default)]
pub(crate) struct Pids {
    pub(crate) apiserver: u32,
    pub(crate) etcd: u32,
    pub(crate) webhook: u32,
    pub(crate) floor: u32,
}

/// The harness records every process group it (or the webhook) started in `<dir>/pgids`; each
/// is led by the process itself.
pub(crate) fn find_pids(cp: &harness::ControlPlane) -> Pids {
    let mut pids = Pids::default();
    let list = std::fs::read_to_string(cp.dir().join("pgids")).unwrap_or_default();
    for pid in list.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        match comm.trim() {
            "kube-apiserver" => pids.apiserver = pid,
            "etcd" => pids.etcd = pid,
            "gpu-admission" => pids.webhook = pid,
            "floor" => pids.floor = pid,
            _ => {}
        }
    }
    pids
}

pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime in clock ticks (`self` for this process).
pub(crate) fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

#[derive(Clone, Copy, Default)]
pub(crate) struct Cpu {
    pub(crate) apiserver: u64,
    pub(crate) etcd: u64,
    pub(crate) webhook: u64,
    pub(crate) floor: u64,
    pub(crate) client: u64,
}

pub(crate) fn cpu_now(p: Pids) -> Cpu {
    Cpu {
        apiserver: cpu_ticks(&p.apiserver.to_string()),
        etcd: cpu_ticks(&p.etcd.to_string()),
        webhook: cpu_ticks(&p.webhook.to_string()),
        floor: if p.floor == 0 {
            0
        } else {
            cpu_ticks(&p.floor.to_string())
        },
        client: cpu_ticks("self"),
    }
}

/// TCP connections between kube-apiserver and the webhook listening on `port` (IPv4 loopback):
/// how many are established, and the client-side (ephemeral) port of every socket of either end
/// in any state (TIME_WAIT included, so connections closed since are seen too).
pub(crate) fn webhook_sockets(port: u16) -> (usize, HashSet<u16>) {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port_of = |addr: &str| addr.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
    let (mut established, mut ephemeral) = (0, HashSet::new());
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state)) = (f.get(1), f.get(2), f.get(3)) else {
            continue;
        };
        let (local, remote) = (port_of(local), port_of(remote));
        if remote == Some(port) {
            // The API server's end.
            established += usize::from(*state == "01");
            ephemeral.extend(local);
        } else if local == Some(port) && *state != "0A" {
            // The webhook's end (not the listening socket).
            ephemeral.extend(remote);
        }
    }
    (established, ephemeral)
}
