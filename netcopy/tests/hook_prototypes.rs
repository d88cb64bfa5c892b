//! fentry and kprobe bodies read their function's arguments by position: a kernel whose
//! function takes other arguments would feed them garbage. These hold every fallback's
//! expected prototype to the kernel's BTF (`NETCOPY_BTF` points them at another kernel's,
//! e.g. a guest's `/sys/kernel/btf/vmlinux` copied out), and check that every hook has a way
//! in on that kernel. No program is loaded: this is what the compatibility gate inspects.

use netcopy::kernel::{
    attach::not_offered,
    btf::Btf,
    btf_path,
    tracer::{HOOKS, Mechanism},
};

fn kernel_btf() -> Btf {
    let path = btf_path();
    Btf::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_fallback_function_here_has_the_prototype_its_body_reads() {
    let btf = kernel_btf();
    let mut checked = 0;
    for hook in HOOKS {
        for att in hook.attachments {
            if att.mechanism == Mechanism::TpBtf {
                assert!(att.params.is_empty(), "{}", att.label());
                continue;
            }
            if let Some(found) = btf.function_params(att.target) {
                assert_eq!(found, att.params, "{} on {}", att.label(), hook.program);
                checked += 1;
            }
        }
    }
    // Every kernel netcopy supports has tcp_sendmsg_locked and sock_recvmsg, at least.
    assert!(
        checked >= 2,
        "only {checked} fallback functions found in BTF"
    );
}

#[test]
fn every_hook_has_a_way_in_or_is_off_this_kernels_path() {
    let btf = kernel_btf();
    for hook in HOOKS {
        let reasons: Vec<String> = hook
            .attachments
            .iter()
            .filter_map(|att| not_offered(att, &btf))
            .collect();
        if reasons.len() < hook.attachments.len() {
            continue;
        }
        let any_function = hook.attachments.iter().any(|att| {
            att.mechanism != Mechanism::TpBtf && btf.function_params(att.target).is_some()
        });
        assert!(
            hook.absent_means.is_some() && !any_function,
            "{}: no way in: {}",
            hook.program,
            reasons.join("; ")
        );
    }
}

/// The fallback for a missing tracepoint is the function's own prototype as this code
/// expects it, spelt the way BTF spells C types.
#[test]
fn btf_spells_a_known_prototype() {
    let btf = kernel_btf();
    assert_eq!(
        btf.function_params("tcp_sendmsg_locked")
            .expect("tcp_sendmsg_locked in BTF"),
        ["struct sock *", "struct msghdr *", "size_t"]
    );
    assert_eq!(btf.function_params("no_such_function_in_any_kernel"), None);
    assert!(btf.has_tracepoint("inet_sock_set_state"));
    assert!(!btf.has_tracepoint("no_such_tracepoint"));
}
