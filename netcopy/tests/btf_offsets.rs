//! The offsets the probes use come from this kernel's BTF, never from literals.

use std::io::Write as _;

use netcopy::kernel::{btf::Btf, btf_path, tracer::resolve_offsets};

#[test]
fn resolves_and_shows_this_kernels_sock_offsets() {
    let btf = Btf::from_file(&btf_path()).expect("this kernel has BTF");
    let offsets = resolve_offsets(&btf).expect("struct sock members are in BTF");
    // Straight to stderr, past the harness's capture: the offsets are part of the evidence.
    let _ = writeln!(
        std::io::stderr(),
        "resolved from {}: {offsets:?}",
        btf_path().display()
    );
    // skc_dport and skc_num share the __portpair union member: dport first, then num. That
    // holds on every kernel, so it checks the reader without knowing this kernel's layout.
    let pair = btf
        .member_offset("sock_common", "skc_portpair")
        .expect("sock_common has skc_portpair");
    let common = btf
        .member_offset("sock", "__sk_common")
        .expect("sock starts with __sk_common");
    assert_eq!(offsets.sock_remote_port, common + pair);
    assert_eq!(offsets.sock_local_port, common + pair + 2);
}

#[test]
fn names_what_is_missing() {
    let btf = Btf::from_file(&btf_path()).expect("this kernel has BTF");
    let err = btf
        .member_offset("sock", "no_such_member")
        .expect_err("no such member");
    assert!(
        err.to_string()
            .contains("struct sock member no_such_member"),
        "{err}"
    );
}

#[test]
fn reads_enum_values() {
    let btf = Btf::from_file(&btf_path()).expect("this kernel has BTF");
    // SOCK_DEAD is the first sock_flags value on every kernel; SOCK_ZEROCOPY comes later.
    assert_eq!(btf.enum_value("sock_flags", "SOCK_DEAD").unwrap(), 0);
    assert!(btf.enum_value("sock_flags", "SOCK_ZEROCOPY").unwrap() > 0);
}

#[test]
fn a_missing_btf_file_is_one_clear_error() {
    let err = Btf::from_file(std::path::Path::new("/nonexistent/vmlinux"))
        .err()
        .expect("missing file");
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/vmlinux") && text.contains("CONFIG_DEBUG_INFO_BTF"),
        "{text}"
    );
}
