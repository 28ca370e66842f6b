//! Process security settings prepared from the spec: capability sets by number, rlimits.
//!
//! Everything here is computed before the init process's last steps; [`crate::sys`] applies it
//! with raw system calls.

use oci_spec::runtime::{Capability, LinuxCapabilities, PosixRlimit, PosixRlimitType};

use crate::error::{Error, Result};

/// Capability names and numbers, from `linux/capability.h`.
const CAPS: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_LINUX_IMMUTABLE", 9),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_BROADCAST", 11),
    ("CAP_NET_ADMIN", 12),
    ("CAP_NET_RAW", 13),
    ("CAP_IPC_LOCK", 14),
    ("CAP_IPC_OWNER", 15),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_PACCT", 20),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_BOOT", 22),
    ("CAP_SYS_NICE", 23),
    ("CAP_SYS_RESOURCE", 24),
    ("CAP_SYS_TIME", 25),
    ("CAP_SYS_TTY_CONFIG", 26),
    ("CAP_MKNOD", 27),
    ("CAP_LEASE", 28),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_SETFCAP", 31),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_SYSLOG", 34),
    ("CAP_WAKE_ALARM", 35),
    ("CAP_BLOCK_SUSPEND", 36),
    ("CAP_AUDIT_READ", 37),
    ("CAP_PERFMON", 38),
    ("CAP_BPF", 39),
    ("CAP_CHECKPOINT_RESTORE", 40),
];

/// Every capability name this runtime knows, for the features document.
pub(crate) fn capability_names() -> Vec<&'static str> {
    CAPS.iter().map(|(n, _)| *n).collect()
}

/// The number of a capability.
fn cap_number(c: &Capability) -> u32 {
    let name = serde_json::to_value(c).expect("a capability serializes to its name");
    let name = name.as_str().unwrap_or_default();
    CAPS.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .expect("every oci-spec capability is in the table")
}

/// The five capability sets of `process.capabilities` as bit masks (bit N is capability N).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CapSets {
    pub(crate) bounding: u64,
    pub(crate) effective: u64,
    pub(crate) permitted: u64,
    pub(crate) inheritable: u64,
    pub(crate) ambient: u64,
}

impl CapSets {
    pub(crate) fn from_spec(c: &LinuxCapabilities) -> Self {
        let mask = |set: &Option<std::collections::HashSet<Capability>>| {
            set.iter()
                .flatten()
                .fold(0u64, |m, c| m | (1u64 << cap_number(c)))
        };
        CapSets {
            bounding: mask(c.bounding()),
            effective: mask(c.effective()),
            permitted: mask(c.permitted()),
            inheritable: mask(c.inheritable()),
            ambient: mask(c.ambient()),
        }
    }
}

/// The warnings for ambient capabilities of `process` that the kernel will not raise
/// because they are not both permitted and inheritable (capabilities(7): "The ambient
/// capability set obeys the invariant that no capability can ever be ambient if it is not
/// both permitted and inheritable"). runc warns about each and goes on ("can't raise
/// ambient capability"), crun too: the configuration `runc spec` writes lists ambient
/// capabilities without inheritable ones.
pub(crate) fn ambient_warnings(process: &oci_spec::runtime::Process) -> Vec<String> {
    let Some(caps) = process.capabilities() else {
        return Vec::new();
    };
    let sets = CapSets::from_spec(caps);
    let lost = sets.ambient & !(sets.permitted & sets.inheritable);
    CAPS.iter()
        .filter(|(_, n)| lost & (1u64 << n) != 0)
        .map(|(name, _)| {
            format!(
                "ambient capability {name} is not raised: it is not in both the permitted and \
                 the inheritable sets"
            )
        })
        .collect()
}

/// Refuses a capability name of `process.capabilities` in a raw `config.json` that this
/// runtime does not know, naming the set and position: runtime-spec 1.0.2 (config.md,
/// POSIX process, `capabilities`): "Any value which cannot be mapped to a relevant kernel
/// interface MUST cause an error." (runc 1.1 and crun refuse it too: "unknown capability".)
/// Checked on the raw JSON, before the typed parse, so the error names the field.
pub(crate) fn check_capability_names(config: &serde_json::Value) -> Result<()> {
    let Some(caps) = config
        .get("process")
        .and_then(|p| p.get("capabilities"))
        .and_then(|c| c.as_object())
    else {
        return Ok(());
    };
    for (set, names) in caps {
        for (i, name) in names.as_array().into_iter().flatten().enumerate() {
            if serde_json::from_value::<Capability>(name.clone()).is_err() {
                return Err(Error::config(
                    format!("process.capabilities.{set}[{i}]"),
                    format!("unknown capability {name}"),
                ));
            }
        }
    }
    Ok(())
}

/// One rlimit: the `RLIMIT_*` resource number, soft and hard values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rlimit {
    pub(crate) resource: u32,
    pub(crate) soft: u64,
    pub(crate) hard: u64,
}

fn rlimit_resource(t: PosixRlimitType) -> u32 {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// The `process.rlimits`, checked: each type at most once, soft not above hard.
pub(crate) fn rlimits(list: &[PosixRlimit]) -> Result<Vec<Rlimit>> {
    let mut out: Vec<Rlimit> = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let resource = rlimit_resource(r.typ());
        if out.iter().any(|o| o.resource == resource) {
            return Err(Error::config(
                format!("process.rlimits[{i}].type"),
                "listed twice",
            ));
        }
        if r.soft() > r.hard() {
            return Err(Error::config(
                format!("process.rlimits[{i}].soft"),
                "is above the hard limit",
            ));
        }
        out.push(Rlimit {
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    Ok(out)
}

/// `process.scheduler` as the kernel's `sched_attr`.
pub(crate) fn sched_attr(s: &oci_spec::runtime::Scheduler) -> crate::sys::SchedAttr {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().fold(0u64, |m, f| {
        m | match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        }
    });
    crate::sys::SchedAttr {
        size: 0,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    }
}

/// `process.ioPriority` as the class and level of `ioprio_set`.
pub(crate) fn io_priority(p: &oci_spec::runtime::LinuxIOPriority) -> Result<(u32, u32)> {
    use oci_spec::runtime::IOPriorityClass as C;
    let class = match p.class() {
        C::IoprioClassRt => 1,
        C::IoprioClassBe => 2,
        C::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        return Err(Error::config(
            "process.ioPriority.priority",
            "must be 0 to 7",
        ));
    }
    Ok((class, p.priority() as u32))
}

/// Whether the host enforces AppArmor profiles, from its sysfs.
pub(crate) fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// Whether the host runs SELinux, from its sysfs.
pub(crate) fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Refuses LSM settings the host cannot apply, clearly, before anything is set up.
pub(crate) fn check_lsm(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let process = spec.process().as_ref();
    if process
        .and_then(|p| p.apparmor_profile().as_ref())
        .is_some()
        && !apparmor_enabled()
    {
        return Err(Error::Unsupported {
            feature: "process.apparmorProfile: AppArmor is not enabled on this host".into(),
        });
    }
    if process.and_then(|p| p.selinux_label().as_ref()).is_some() && !selinux_enabled() {
        return Err(Error::Unsupported {
            feature: "process.selinuxLabel: SELinux is not enabled on this host".into(),
        });
    }
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.mount_label().as_ref())
        .is_some()
    {
        return Err(Error::Unsupported {
            feature: if selinux_enabled() {
                "linux.mountLabel (SELinux mount contexts)".into()
            } else {
                "linux.mountLabel: SELinux is not enabled on this host".into()
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capability_numbers_match_the_kernel() {
        assert_eq!(cap_number(&Capability::Chown), 0);
        assert_eq!(cap_number(&Capability::SysAdmin), 21);
        assert_eq!(cap_number(&Capability::CheckpointRestore), 40);
        let caps: LinuxCapabilities = serde_json::from_value(json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN"],
            "effective": ["CAP_KILL"],
            "ambient": []
        }))
        .unwrap();
        let sets = CapSets::from_spec(&caps);
        assert_eq!(sets.bounding, 0b100001);
        assert_eq!(sets.effective, 0b100000);
        assert_eq!(sets.ambient, 0);
    }

    #[test]
    fn unknown_capabilities_are_errors() {
        let v = json!({"process": {"capabilities": {
            "bounding": ["CAP_KILL", "CAP_NOT_A_THING"],
            "effective": ["CAP_KILL"]
        }}});
        match check_capability_names(&v) {
            Err(Error::InvalidConfig { field, reason }) => {
                assert_eq!(field, "process.capabilities.bounding[1]");
                assert!(reason.contains("CAP_NOT_A_THING"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let ok = json!({"process": {"capabilities": {"bounding": ["CAP_KILL"]}}});
        check_capability_names(&ok).unwrap();
    }

    #[test]
    fn rlimits_are_checked() {
        let parse = |v| serde_json::from_value::<Vec<PosixRlimit>>(v).unwrap();
        let ok = rlimits(&parse(
            json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]),
        ));
        assert_eq!(
            ok.unwrap(),
            [Rlimit {
                resource: libc::RLIMIT_NOFILE,
                soft: 100,
                hard: 200
            }]
        );
        let twice = json!([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2},
                           {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}]);
        assert!(rlimits(&parse(twice)).is_err());
        let inverted = json!([{"type": "RLIMIT_CORE", "soft": 3, "hard": 2}]);
        assert!(rlimits(&parse(inverted)).is_err());
    }
}
