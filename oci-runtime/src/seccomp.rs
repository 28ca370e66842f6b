//! `linux.seccomp` compiled to a classic BPF program, in Rust (no libseccomp).
//!
//! The program checks the architecture (anything but the native one, and on x86_64 the x32
//! system call range, is killed, as libseccomp does for an architecture without rules), then
//! tries the rules in order: for each system call name, its number and the argument
//! conditions; the first rule that matches gives the action, and none gives the default
//! action. Arguments compare as 64-bit values.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Error, Result};

const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JGE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const AND: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RET: u16 = 0x06; // BPF_RET | BPF_K

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// The kernel's limit on a program's length.
const MAX_INSNS: usize = 4096;

#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64

/// A jump target while a rule is assembled: so many instructions ahead, or past the rule.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum To {
    /// Skip this many instructions (0: the next one).
    Skip(u8),
    /// Past the whole rule: it does not match.
    Fail,
}

#[derive(Clone, Copy, Debug)]
struct Insn {
    code: u16,
    jt: To,
    jf: To,
    k: u32,
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: To::Skip(0),
        jf: To::Skip(0),
        k,
    }
}

fn jump(code: u16, k: u32, jt: To, jf: To) -> Insn {
    Insn { code, jt, jf, k }
}

fn filter(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// A compiled filter and the `seccomp(2)` flags to install it with.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub(crate) filter: Vec<libc::sock_filter>,
    pub(crate) flags: libc::c_uint,
}

/// The code testing one argument condition; jumps to `Pass` or `Fail`.
fn arg_code(a: &LinuxSeccompArg) -> Result<Vec<Insn>> {
    use LinuxSeccompOperator::*;
    // `Pass` (past this condition) and `Next` are resolved to offsets below.
    const NEXT: To = To::Skip(0);
    const PASS: To = To::Skip(u8::MAX);
    const FAIL: To = To::Fail;
    if a.index() > 5 {
        return Err(Error::config(
            "linux.seccomp.syscalls[].args[].index",
            format!("{} is not an argument index (0 to 5)", a.index()),
        ));
    }
    let lo_off = OFF_ARGS + 8 * a.index() as u32;
    let hi_off = lo_off + 4;
    let v = a.value();
    let (vhi, vlo) = ((v >> 32) as u32, v as u32);
    let (ld_hi, ld_lo) = (stmt(LD_ABS, hi_off), stmt(LD_ABS, lo_off));
    let code = match a.op() {
        ScmpCmpEq => vec![
            ld_hi,
            jump(JEQ, vhi, NEXT, FAIL),
            ld_lo,
            jump(JEQ, vlo, PASS, FAIL),
        ],
        ScmpCmpNe => vec![
            ld_hi,
            jump(JEQ, vhi, NEXT, PASS),
            ld_lo,
            jump(JEQ, vlo, FAIL, PASS),
        ],
        ScmpCmpGt => vec![
            ld_hi,
            jump(JGT, vhi, PASS, NEXT),
            jump(JEQ, vhi, NEXT, FAIL),
            ld_lo,
            jump(JGT, vlo, PASS, FAIL),
        ],
        ScmpCmpGe => vec![
            ld_hi,
            jump(JGT, vhi, PASS, NEXT),
            jump(JEQ, vhi, NEXT, FAIL),
            ld_lo,
            jump(JGE, vlo, PASS, FAIL),
        ],
        ScmpCmpLt => vec![
            ld_hi,
            jump(JGT, vhi, FAIL, NEXT),
            jump(JEQ, vhi, NEXT, PASS),
            ld_lo,
            jump(JGE, vlo, FAIL, PASS),
        ],
        ScmpCmpLe => vec![
            ld_hi,
            jump(JGT, vhi, FAIL, NEXT),
            jump(JEQ, vhi, NEXT, PASS),
            ld_lo,
            jump(JGT, vlo, FAIL, PASS),
        ],
        ScmpCmpMaskedEq => {
            let want = a.value_two().unwrap_or(0);
            vec![
                ld_hi,
                stmt(AND, vhi),
                jump(JEQ, (want >> 32) as u32, NEXT, FAIL),
                ld_lo,
                stmt(AND, vlo),
                jump(JEQ, want as u32, PASS, FAIL),
            ]
        }
    };
    let len = code.len();
    let resolve = |j: usize, t: To| {
        if t == PASS {
            To::Skip((len - j - 1) as u8)
        } else {
            t
        }
    };
    Ok(code
        .into_iter()
        .enumerate()
        .map(|(j, i)| Insn {
            jt: resolve(j, i.jt),
            jf: resolve(j, i.jf),
            ..i
        })
        .collect())
}

fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<u32> {
    match a {
        LinuxSeccompAction::ScmpActNotify => Err(Error::Unsupported {
            feature: format!("{field}: SCMP_ACT_NOTIFY (a seccomp listener)"),
        }),
        a => Ok(a.as_u32(errno)),
    }
}

/// The system call number of `name` on this architecture.
pub(crate) fn syscall_number(name: &str) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    {
        let table = crate::syscalls::X86_64;
        table
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| table[i].1)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = name;
        None
    }
}

/// Compiles the filter. A system call name this architecture does not have is skipped, and
/// said in the returned warnings.
pub(crate) fn compile(s: &LinuxSeccomp) -> Result<(Program, Vec<String>)> {
    if !cfg!(target_arch = "x86_64") {
        return Err(Error::Unsupported {
            feature: "linux.seccomp on this architecture (only x86_64 has a system call table)"
                .into(),
        });
    }
    let mut warnings = Vec::new();
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    // Architecture, then (x86_64) no x32 system calls; A holds the number afterwards.
    let mut out: Vec<libc::sock_filter> = vec![
        filter(LD_ABS, 0, 0, OFF_ARCH),
        filter(JEQ, 1, 0, NATIVE_ARCH),
        filter(RET, 0, 0, RET_KILL_PROCESS),
        filter(LD_ABS, 0, 0, OFF_NR),
        filter(JGE, 0, 1, X32_SYSCALL_BIT),
        filter(RET, 0, 0, RET_KILL_PROCESS),
    ];
    let mut a_is_nr = true;
    for (r, rule) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{r}]");
        let ret = action(rule.action(), rule.errno_ret(), &field)?;
        let mut conds: Vec<Insn> = Vec::new();
        for a in rule.args().iter().flatten() {
            conds.extend(arg_code(a)?);
        }
        if conds.len() + 1 > 255 {
            return Err(Error::config(field, "too many argument conditions"));
        }
        for name in rule.names() {
            let Some(nr) = syscall_number(name) else {
                warnings.push(format!("{field}: unknown system call {name:?}: skipped"));
                continue;
            };
            if !a_is_nr {
                out.push(filter(LD_ABS, 0, 0, OFF_NR));
            }
            // The number: into the conditions, else past them and the return.
            out.push(filter(JEQ, 0, conds.len() as u8 + 1, nr));
            for (j, i) in conds.iter().enumerate() {
                // Past the conditions after this one, and the return.
                let off = |t: To| match t {
                    To::Skip(n) => n,
                    To::Fail => (conds.len() - j) as u8,
                };
                out.push(filter(i.code, off(i.jt), off(i.jf), i.k));
            }
            out.push(filter(RET, 0, 0, ret));
            a_is_nr = conds.is_empty();
        }
    }
    out.push(filter(RET, 0, 0, default));
    if out.len() > MAX_INSNS {
        return Err(Error::config(
            "linux.seccomp",
            format!(
                "{} BPF instructions, more than the kernel's {MAX_INSNS}",
                out.len()
            ),
        ));
    }
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    Ok((Program { filter: out, flags }, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Runs a classic BPF program on `(arch, nr, args)` as the kernel would.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                0 => nr,
                4 => arch,
                o if o >= 16 => {
                    let a = args[((o - 16) / 8) as usize];
                    if o % 8 == 0 {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                o => panic!("load at {o}"),
            }
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            pc += 1;
            let cond = |c: bool| if c { i.jt as usize } else { i.jf as usize };
            match i.code {
                LD_ABS => acc = word(i.k),
                AND => acc &= i.k,
                RET => return i.k,
                JEQ => pc += cond(acc == i.k),
                JGT => pc += cond(acc > i.k),
                JGE => pc += cond(acc >= i.k),
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn compile_json(v: serde_json::Value) -> (Program, Vec<String>) {
        compile(&serde_json::from_value(v).unwrap()).unwrap()
    }

    const ALLOW: u32 = 0x7fff_0000;
    const KILL: u32 = 0x8000_0000;

    #[test]
    fn names_actions_and_default() {
        let (p, w) = compile_json(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read", "write", "not_a_syscall"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95},
                {"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["getpid"], "action": "SCMP_ACT_TRAP"},
                {"names": ["getppid"], "action": "SCMP_ACT_LOG"}
            ]
        }));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("not_a_syscall"));
        let x = |nr| run(&p.filter, NATIVE_ARCH, nr, [0; 6]);
        assert_eq!(x(0), ALLOW);
        assert_eq!(x(1), ALLOW);
        assert_eq!(x(83), 0x0005_0000 | 95);
        assert_eq!(x(63), KILL);
        assert_eq!(x(39), 0x0003_0000);
        assert_eq!(x(110), 0x7ffc_0000);
        assert_eq!(x(2), 0x0005_0000 | 38, "the default");
        // Another architecture, and x32 numbers, are killed.
        assert_eq!(run(&p.filter, 0x4000_0003, 0, [0; 6]), KILL);
        assert_eq!(x(X32_SYSCALL_BIT | 1), KILL);
    }

    #[test]
    fn argument_conditions_compare_64_bits() {
        let rule = |op: &str, value: u64, two: Option<u64>| {
            let (p, _) = compile_json(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                              "args": [{"index": 1, "value": value, "valueTwo": two, "op": op}]}]
            }));
            move |arg: u64| run(&p.filter, NATIVE_ARCH, 62, [7, arg, 0, 0, 0, 0]) != ALLOW
        };
        let big = 5u64 << 32 | 10;
        type Case<'a> = (&'a str, u64, &'a [(u64, bool)]);
        let cases: &[Case] = &[
            (
                "SCMP_CMP_EQ",
                big,
                &[(big, true), (10, false), (big + 1, false)],
            ),
            (
                "SCMP_CMP_NE",
                big,
                &[(big, false), (10, true), (5 << 32, true)],
            ),
            (
                "SCMP_CMP_GT",
                big,
                &[(big + 1, true), (big, false), (6 << 32, true), (11, false)],
            ),
            (
                "SCMP_CMP_GE",
                big,
                &[(big, true), (big - 1, false), (u64::MAX, true)],
            ),
            (
                "SCMP_CMP_LT",
                big,
                &[(big - 1, true), (big, false), (4 << 32 | 99, true)],
            ),
            (
                "SCMP_CMP_LE",
                big,
                &[(big, true), (big + 1, false), (0, true)],
            ),
        ];
        for (op, v, checks) in cases {
            let denied = rule(op, *v, None);
            for (arg, want) in *checks {
                assert_eq!(denied(*arg), *want, "{op} {v:#x} on {arg:#x}");
            }
        }
        let masked = rule("SCMP_CMP_MASKED_EQ", 0xff | 1 << 40, Some(0x10 | 1 << 40));
        assert!(masked(0x1234_5610 | 1 << 40));
        assert!(!masked(0x10));
        assert!(!masked(0x11 | 1 << 40));
        // Two conditions on one rule: both must hold.
        let (p, _) = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                   {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
                         {"names": ["kill"], "action": "SCMP_ACT_KILL"}]
        }));
        let x = |a: u64, b: u64| run(&p.filter, NATIVE_ARCH, 62, [a, b, 0, 0, 0, 0]);
        assert_eq!(x(1, 9), 0x0005_0001, "EPERM by default");
        assert_eq!(x(1, 8), 0, "the next rule");
        assert_eq!(x(2, 9), 0);
    }

    #[test]
    fn table_and_limits() {
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("openat2"), Some(437));
        assert_eq!(syscall_number("fchmodat2"), Some(452));
        assert_eq!(syscall_number("nope"), None);
        let t = crate::syscalls::X86_64;
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        let bad = serde_json::from_value::<LinuxSeccomp>(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .unwrap();
        assert!(matches!(compile(&bad), Err(Error::Unsupported { .. })));
        let flags = compile_json(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}));
        assert_eq!(flags.0.flags, 6);
    }
}
