//! `cargo xtask vm -- nic`: zero-copy through a NIC driver, in one guest with two e1000 NICs
//! joined back to back (`--nic-pair`, implied): every mode over `loopback`, `nic` and
//! `nic-no-sg` side by side (`netcopy compare`), then `serve` behind one NIC and
//! `sweep --connect` through the other into one CSV. Also the NIC test for the guest suite.

use anyhow::Result;

use super::{Job, quote};
use crate::{cmd, setup};

/// The test binaries the NIC pair's guest suite runs.
pub const NIC_GUEST_TESTS: &[&str] = &["nic_path"];
const NIC_GUEST_KERNEL: &str = "6.1";

/// The guest script after `NC=<netcopy>`: exits non-zero when any command failed or
/// disagreed. The serving NIC goes into a namespace of its own (192.0.2.2), the sending one
/// stays in the guest's (192.0.2.1): two hosts across a driver, inside one guest.
const NIC_SCRIPT: &str = r#"st=0
for p in loopback nic nic-no-sg; do
  echo "== netcopy compare --path $p --size 16K"
  "$NC" compare --path "$p" --size 16K --duration 1s --warmup 200ms || st=1
done
A=${NETCOPY_NICS%% *}; B=${NETCOPY_NICS##* }
echo "== netcopy serve behind $B (namespace nc-serve, 192.0.2.2), sweep --connect through $A (192.0.2.1)"
ip netns add nc-serve && ip link set "$B" netns nc-serve \
  && ip -n nc-serve addr add 192.0.2.2/24 dev "$B" && ip -n nc-serve link set lo up \
  && ip -n nc-serve link set "$B" up && ip addr add 192.0.2.1/24 dev "$A" && ip link set "$A" up \
  || st=1
for i in $(seq 100); do [ "$(cat /sys/class/net/$A/carrier 2>/dev/null)" = 1 ] && break; sleep 0.2; done
export NETCOPY_TOKEN=nic-pair-in-one-guest
ip netns exec nc-serve "$NC" serve --bind 192.0.2.2 & S=$!
for i in $(seq 300); do ip netns exec nc-serve ss -ltn | grep -q '192.0.2.2:7070' && break; sleep 0.2; done
"$NC" sweep --connect 192.0.2.2 --modes a1,a3,a4,a5 --sizes 16K --workload stream --threads 1 \
  --reps 1 --duration 1s --warmup 200ms --out results || st=1
kill $S; wait $S
ip addr flush dev "$A"; ip link set "$A" down; ip netns del nc-serve
exit $st"#;

/// The guest's job for `nic`.
pub fn job(env: &setup::Env) -> Result<Job> {
    let netcopy = cmd::build_release(env)?;
    Ok(Job {
        body: format!(
            "(\nNC={}\n{NIC_SCRIPT}\n)",
            quote(&netcopy.display().to_string())
        ),
        label: "nic (compare over loopback, nic, nic-no-sg; serve and sweep --connect)".to_owned(),
    })
}

/// The NIC pair's guest suite: [`NIC_GUEST_TESTS`] in a 6.1 guest with the pair, timed. For
/// `cargo xtask test`'s guest suite to call beside its own.
pub fn ci_suite(env: &setup::Env) -> Result<()> {
    super::tests::timed_suite(
        env,
        "NIC guest suite",
        NIC_GUEST_KERNEL,
        NIC_GUEST_TESTS,
        true,
    )
}
