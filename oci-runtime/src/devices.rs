//! Device rules: the policy every container gets (default deny, the configuration's rules, the
//! devices runc always allows), written as v1 `devices.allow`/`devices.deny` lines or, for
//! cgroup v2, compiled into an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`, which the
//! kernel runs on every device access of the cgroup's processes, as runc's device filter does.
//!
//! In the program, rules are tried last to first (the last matching rule decides); no match
//! denies.

use std::collections::BTreeMap;

use oci_spec::runtime::{Linux, LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BpfInsn {
    pub(crate) code: u8,
    /// `dst` in the low nibble, `src` in the high one.
    pub(crate) regs: u8,
    pub(crate) off: i16,
    pub(crate) imm: i32,
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// Device type numbers as the kernel's device program context has them.
const BLOCK: u32 = 1;
const CHAR: u32 = 2;
/// Access bits: mknod, read, write.
const MKNOD: u32 = 1;
const ALL: u32 = 7;

/// A rule in kernel terms: device type (`BLOCK`, `CHAR`, `None` any), access bits (1 mknod,
/// 2 read, 4 write), major and minor (`None` any), allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) typ: Option<u32>,
    pub(crate) access: u32,
    pub(crate) major: Option<u32>,
    pub(crate) minor: Option<u32>,
    pub(crate) allow: bool,
}

/// runc 1.1's `AllowedDevices` (libcontainer/specconv), the rules it appends to every
/// container's own, which a configuration cannot take away: mknod of any character or block
/// device (but no use of it), then `/dev/null`, `random`, `full`, `tty`, `zero`, `urandom`,
/// the pseudo-terminals (`136:*`), `/dev/ptmx` (5:2) and tun (10:200). The path, where there
/// is one, is the node a `linux.devices` entry of the same path replaces (runc then drops the
/// default's rule).
const RUNC_DEFAULTS: &[(Option<&str>, Rule)] = &[
    (None, allow(CHAR, None, None, MKNOD)),
    (None, allow(BLOCK, None, None, MKNOD)),
    (Some("/dev/null"), allow(CHAR, Some(1), Some(3), ALL)),
    (Some("/dev/random"), allow(CHAR, Some(1), Some(8), ALL)),
    (Some("/dev/full"), allow(CHAR, Some(1), Some(7), ALL)),
    (Some("/dev/tty"), allow(CHAR, Some(5), Some(0), ALL)),
    (Some("/dev/zero"), allow(CHAR, Some(1), Some(5), ALL)),
    (Some("/dev/urandom"), allow(CHAR, Some(1), Some(9), ALL)),
    (None, allow(CHAR, Some(136), None, ALL)),
    (None, allow(CHAR, Some(5), Some(2), ALL)),
    (None, allow(CHAR, Some(10), Some(200), ALL)),
];

const fn allow(typ: u32, major: Option<u32>, minor: Option<u32>, access: u32) -> Rule {
    Rule {
        typ: Some(typ),
        access,
        major,
        minor,
        allow: true,
    }
}

fn access_bits(s: &str) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    s.chars().try_fold(0, |m, c| {
        Some(
            m | match c {
                'm' => MKNOD,
                'r' => 2,
                'w' => 4,
                _ => return None,
            },
        )
    })
}

/// One `linux.resources.devices` entry; the error says what is wrong with it.
fn from_spec(d: &LinuxDeviceCgroup) -> Result<Rule, String> {
    // runtime-spec (config-linux.md, "Allowed Device List"): "type (string, OPTIONAL) - type
    // of device: a (all), c (char), or b (block). Unset values mean "all", mapping to a."
    let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => None,
        LinuxDeviceType::B => Some(BLOCK),
        LinuxDeviceType::C => Some(CHAR),
        t => return Err(format!("type {:?} is not a, b or c", t.as_str())),
    };
    let num = |n: Option<i64>, what: &str| match n {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None), // runc's wildcard
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| format!("{what} {n} is out of range")),
    };
    let access = d.access().as_deref().unwrap_or("rwm");
    Ok(Rule {
        typ,
        access: access_bits(access)
            .ok_or_else(|| format!("access {access:?} is not a combination of r, w and m"))?,
        major: num(d.major(), "major")?,
        minor: num(d.minor(), "minor")?,
        allow: d.allow(),
    })
}

/// The device policy of a container, in order: deny everything, the configuration's
/// `linux.resources.devices`, an allow rule for each of its `linux.devices` (the container's
/// own nodes are usable whatever the rules say), then runc's defaults. Applied on every host,
/// whether or not the configuration has any rules, as runc does.
pub(crate) fn policy(linux: Option<&Linux>) -> Result<Vec<Rule>> {
    let mut out = vec![Rule {
        typ: None,
        access: ALL,
        major: None,
        minor: None,
        allow: false,
    }];
    let rules = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref());
    for (i, d) in rules.into_iter().flatten().enumerate() {
        out.push(
            from_spec(d)
                .map_err(|reason| Error::config(format!("linux.resources.devices[{i}]"), reason))?,
        );
    }
    let devices = linux.and_then(|l| l.devices().as_ref());
    for (i, d) in devices.into_iter().flatten().enumerate() {
        let typ = match d.typ() {
            LinuxDeviceType::B => BLOCK,
            LinuxDeviceType::C | LinuxDeviceType::U => CHAR,
            // A fifo is no device: the device controller never sees it.
            LinuxDeviceType::P => continue,
            LinuxDeviceType::A => {
                return Err(Error::config(
                    format!("linux.devices[{i}].type"),
                    "must be b, c, u or p",
                ));
            }
        };
        let num = |n: i64, what: &str| {
            u32::try_from(n).map_err(|_| {
                Error::config(
                    format!("linux.devices[{i}].{what}"),
                    format!("{n} is out of range"),
                )
            })
        };
        out.push(Rule {
            typ: Some(typ),
            access: ALL,
            major: Some(num(d.major(), "major")?),
            minor: Some(num(d.minor(), "minor")?),
            allow: true,
        });
    }
    for (path, rule) in RUNC_DEFAULTS {
        let replaced = path.is_some_and(|p| {
            devices
                .into_iter()
                .flatten()
                .any(|d| d.path() == std::path::Path::new(p))
        });
        if !replaced {
            out.push(*rule);
        }
    }
    Ok(out)
}

/// What a v1 devices cgroup holds once `rules` are written in order, computed as the kernel
/// does (security/device_cgroup.c): a rule for every device (`a`) sets the default and clears
/// the exceptions; a rule agreeing with the default takes its access away from the exception
/// with the same type and numbers; any other rule adds to that exception.
///
/// Returns the `(file, line)` writes that give the same state directly: the default, then
/// the exceptions sorted by type, major and minor (wildcards first), the order in which
/// runc's device emulator writes them, so that `devices.list` reads the same as under runc.
pub(crate) fn v1_writes(rules: &[Rule]) -> Vec<(&'static str, String)> {
    let mut default_allow = true;
    // (type, major, minor), wildcards as -1 so that they sort first -> access.
    let mut exceptions: BTreeMap<(u32, i64, i64), u32> = BTreeMap::new();
    let wild = |n: Option<u32>| n.map_or(-1, i64::from);
    for r in rules {
        let Some(typ) = r.typ else {
            default_allow = r.allow;
            exceptions.clear();
            continue;
        };
        let key = (typ, wild(r.major), wild(r.minor));
        if r.allow == default_allow {
            if let Some(a) = exceptions.get_mut(&key) {
                *a &= !r.access;
                if *a == 0 {
                    exceptions.remove(&key);
                }
            }
        } else {
            *exceptions.entry(key).or_insert(0) |= r.access;
        }
    }
    let (reset, except) = if default_allow {
        ("devices.allow", "devices.deny")
    } else {
        ("devices.deny", "devices.allow")
    };
    let mut out = vec![(reset, "a".to_string())];
    let num = |n: i64| {
        if n < 0 {
            "*".to_string()
        } else {
            n.to_string()
        }
    };
    for ((typ, major, minor), access) in exceptions {
        let t = if typ == BLOCK { 'b' } else { 'c' };
        let a: String = [(2, 'r'), (4, 'w'), (MKNOD, 'm')]
            .iter()
            .filter(|(bit, _)| access & bit != 0)
            .map(|(_, c)| c)
            .collect();
        out.push((except, format!("{t} {}:{} {a}", num(major), num(minor))));
    }
    out
}

/// The program: r2 = type, r3 = access, r4 = major, r5 = minor; then each rule, last first.
pub(crate) fn program(rules: &[Rule]) -> Vec<BpfInsn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut block = Vec::new();
        // Each check jumps past the rest of the block (fixed below) when it fails.
        if let Some(t) = r.typ {
            block.push(insn(JNE_K, 2, 0, 0, t as i32));
        }
        if r.access != 7 {
            // The access asked for must be within the rule's.
            block.push(insn(MOV_X, 1, 3, 0, 0));
            block.push(insn(AND_K, 1, 0, 0, r.access as i32));
            block.push(insn(JNE_X, 1, 3, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(insn(JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(insn(JNE_K, 5, 0, 0, m as i32));
        }
        block.push(insn(MOV_K, 0, 0, 0, i32::from(r.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, b) in block.iter_mut().enumerate() {
            if b.code == JNE_K || b.code == JNE_X {
                b.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
        if len == 2 {
            // A rule for everything: the rules before it can never decide, and the kernel's
            // verifier refuses unreachable code.
            return p;
        }
    }
    p.push(insn(MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Runs the program as the kernel would on one access.
    fn run(p: &[BpfInsn], typ: u32, access: u32, major: u32, minor: u32) -> bool {
        let ctx = [access << 16 | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0;
        loop {
            let i = p[pc];
            let (d, s) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[d] = u64::from(ctx[i.off as usize / 4]),
                AND_K => r[d] &= i.imm as u32 as u64,
                RSH_K => r[d] >>= i.imm,
                MOV_X => r[d] = r[s],
                MOV_K => r[d] = i.imm as u64,
                JNE_K if r[d] != i.imm as u32 as u64 => pc += i.off as usize,
                JNE_X if r[d] != r[s] => pc += i.off as usize,
                JNE_K | JNE_X => {}
                EXIT => return r[0] == 1,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn linux(v: serde_json::Value) -> Linux {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn last_matching_rule_wins() {
        let l = linux(json!({
            "resources": {"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                {"allow": true, "type": "b", "major": 8, "access": "r"}
            ]},
            "devices": [{"path": "/dev/loop7", "type": "b", "major": 7, "minor": 7}]
        }));
        let p = program(&policy(Some(&l)).unwrap());
        let (read, write, mknod) = (2, 4, 1);
        assert!(run(&p, CHAR, read, 1, 3), "/dev/null, always allowed");
        assert!(run(&p, CHAR, read | write, 10, 229), "/dev/fuse");
        assert!(
            !run(&p, CHAR, read | write | mknod, 10, 229),
            "not mknod too"
        );
        assert!(run(&p, BLOCK, read, 8, 17), "any sda partition, read");
        assert!(!run(&p, BLOCK, write, 8, 17));
        assert!(
            run(&p, BLOCK, read | write, 7, 7),
            "the configuration's own device"
        );
        assert!(!run(&p, BLOCK, read, 7, 0), "another loop device");
        assert!(run(&p, BLOCK, mknod, 7, 0), "mknod of anything, as runc");
        assert!(!run(&p, CHAR, read, 4, 1), "everything else is denied");
        assert!(run(&p, CHAR, read | write, 136, 5), "pseudo-terminals");
        let allow_all =
            linux(json!({"resources": {"devices": [{"allow": true, "access": "rwm"}]}}));
        assert!(run(
            &program(&policy(Some(&allow_all)).unwrap()),
            BLOCK,
            7,
            259,
            0
        ));
    }

    /// With no rules at all, the default deny and runc's list: `devices.list` as runc 1.1.5
    /// leaves it (seen on a v1 host, `runc run` of `runc spec`'s bundle without
    /// `linux.resources`).
    #[test]
    fn no_rules_give_runc_default_list() {
        for l in [
            None,
            Some(linux(json!({}))),
            Some(linux(json!({"resources": {"devices": []}}))),
        ] {
            let rules = policy(l.as_ref()).unwrap();
            let w = v1_writes(&rules);
            assert_eq!(w[0], ("devices.deny", "a".to_string()));
            assert!(w[1..].iter().all(|(f, _)| *f == "devices.allow"));
            let lines: Vec<&str> = w[1..].iter().map(|(_, l)| l.as_str()).collect();
            assert_eq!(
                lines,
                [
                    "b *:* m",
                    "c *:* m",
                    "c 1:3 rwm",
                    "c 1:5 rwm",
                    "c 1:7 rwm",
                    "c 1:8 rwm",
                    "c 1:9 rwm",
                    "c 5:0 rwm",
                    "c 5:2 rwm",
                    "c 10:200 rwm",
                    "c 136:* rwm"
                ]
            );
            let p = program(&rules);
            assert!(!run(&p, BLOCK, 2, 7, 0), "no loop device");
            assert!(run(&p, BLOCK, 1, 7, 0), "but mknod of it");
        }
    }

    /// The v1 state follows the kernel's rules for each write in turn.
    #[test]
    fn v1_state_as_the_kernel_computes_it() {
        let writes =
            |v| v1_writes(&policy(Some(&linux(json!({"resources": {"devices": v}})))).unwrap());
        // Allow everything, deny /dev/null: the defaults allow it again; the list is "a".
        let w = writes(json!([
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]));
        assert_eq!(w, [("devices.allow", "a".to_string())]);
        // Allow everything, deny a disk: that exception stays.
        let w = writes(json!([
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "w"}
        ]));
        assert_eq!(
            w,
            [
                ("devices.allow", "a".to_string()),
                ("devices.deny", "b 8:0 w".to_string())
            ]
        );
        // Access merges per device; a deny takes bits away.
        let w = writes(json!([
            {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"},
            {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "wm"},
            {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "m"}
        ]));
        assert!(
            w.contains(&("devices.allow", "b 8:0 rw".to_string())),
            "{w:?}"
        );
    }

    #[test]
    fn bad_rules_name_the_field() {
        let bad = |v| policy(Some(&linux(v))).unwrap_err().to_string();
        let e =
            bad(json!({"resources": {"devices": [{"allow": true, "type": "p", "access": "r"}]}}));
        assert!(
            e.contains("linux.resources.devices[0]") && e.contains("\"p\""),
            "{e}"
        );
        let e = bad(json!({"resources": {"devices": [
            {"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "access": "rx"}]}}));
        assert!(
            e.contains("linux.resources.devices[1]") && e.contains("\"rx\""),
            "{e}"
        );
        let e =
            bad(json!({"resources": {"devices": [{"allow": true, "type": "c", "access": ""}]}}));
        assert!(e.contains("access \"\""), "{e}");
    }
}
