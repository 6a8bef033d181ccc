// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* Test beds only: a native XDP program that passes every frame. veth drops frames that the other
 * end sends with XDP_TX or XDP_REDIRECT unless this end has a native XDP program too, so the test
 * bed attaches this to the bridge-side end of every host's veth. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
    (void)ctx;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
