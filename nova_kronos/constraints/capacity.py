# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.


"""Capacity constraints: flavor fits, and no policy threshold is crossed."""

import numpy as np

from nova_kronos import scoring


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
    """Every policy's predicted destination load stays within its threshold.

    The rule is :func:`nova_kronos.scoring.within_threshold`, which the
    scheduler filter and the pack weigher apply too.
    """
    ok = np.ones((len(servers), len(hosts)), dtype=bool)
    for p in range(state.loads.shape[0]):
        added = state.added_load(p, servers, hosts)
        ok &= scoring.within_threshold(
            state.loads[p, hosts][None, :] + added, state.thresholds[p])
    return ok
