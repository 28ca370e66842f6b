//! Device rules for cgroup v2: an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`, which the
//! kernel runs on every device access of the cgroup's processes, as runc's device filter does.
//!
//! Rules are tried last to first (the last matching rule decides, as with v1's lists); no
//! match denies.

use oci_spec::runtime::LinuxDeviceCgroup;

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

/// A rule in kernel terms: device type (1 block, 2 char, `None` any), access bits (1 mknod,
/// 2 read, 4 write), major and minor (`None` any), allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) typ: Option<u32>,
    pub(crate) access: u32,
    pub(crate) major: Option<u32>,
    pub(crate) minor: Option<u32>,
    pub(crate) allow: bool,
}

fn access_bits(s: &str) -> u32 {
    s.chars().fold(0, |m, c| {
        m | match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        }
    })
}

/// The spec's rules followed by the devices a container may always use (as runc adds).
pub(crate) fn rules(spec: &[LinuxDeviceCgroup]) -> Vec<Rule> {
    let mut out: Vec<Rule> = spec
        .iter()
        .map(|d| {
            let typ = match d.typ().map(|t| t.as_str().to_string()).as_deref() {
                Some("b") => Some(1),
                Some("c") | Some("u") => Some(2),
                _ => None,
            };
            let num = |n: Option<i64>| n.filter(|n| *n >= 0).map(|n| n as u32);
            Rule {
                typ,
                access: access_bits(d.access().as_deref().unwrap_or("rwm")),
                major: num(d.major()),
                minor: num(d.minor()),
                allow: d.allow(),
            }
        })
        .collect();
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
        out.push(Rule {
            typ: Some(2),
            access: 7,
            major: Some(major),
            minor: Some(minor),
            allow: true,
        });
    }
    out.push(Rule {
        typ: Some(2),
        access: 7,
        major: Some(136),
        minor: None,
        allow: true,
    });
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

    #[test]
    fn last_matching_rule_wins() {
        let spec: Vec<LinuxDeviceCgroup> = serde_json::from_value(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"},
            {"allow": true, "type": "b", "major": 8, "access": "r"}
        ]))
        .unwrap();
        let p = program(&rules(&spec));
        let (read, write, mknod) = (2, 4, 1);
        assert!(run(&p, 2, read, 1, 3), "/dev/null, always allowed");
        assert!(run(&p, 2, read | write, 10, 200), "/dev/net/tun");
        assert!(!run(&p, 2, mknod, 10, 200), "not mknod");
        assert!(run(&p, 1, read, 8, 17), "any sda partition, read");
        assert!(!run(&p, 1, write, 8, 17));
        assert!(!run(&p, 2, read, 4, 1), "everything else is denied");
        assert!(run(&p, 2, read | write, 136, 5), "pseudo-terminals");
        let allow_all: Vec<LinuxDeviceCgroup> =
            serde_json::from_value(json!([{"allow": true, "access": "rwm"}])).unwrap();
        assert!(run(&program(&rules(&allow_all)), 1, 7, 259, 0));
    }
}
