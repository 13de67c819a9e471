"""Capacity constraints: flavor fits, and no policy threshold is crossed."""

import numpy as np


def fits(state, servers, hosts):
    """The flavor's vCPUs and RAM fit the destination's free capacity.

    Free capacity is Placement's ``(total - reserved) * allocation_ratio -
    used`` for VCPU and MEMORY_MB, kept up to date as moves are planned.
    """
    vcpu_ok = state.vcpus[servers][:, None] <= state.free_vcpus[hosts][None, :]
    mem_ok = (state.memory_mb[servers][:, None]
              <= state.free_memory_mb[hosts][None, :])
    return vcpu_ok & mem_ok


def under_threshold(state, servers, hosts):
    """No policy's predicted destination load exceeds its threshold."""
    ok = np.ones((len(servers), len(hosts)), dtype=bool)
    for p in range(state.loads.shape[0]):
        added = state.added_load(p, servers, hosts)
        ok &= state.loads[p, hosts][None, :] + added <= state.thresholds[p]
    return ok
