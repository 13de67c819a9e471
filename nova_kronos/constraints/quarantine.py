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


"""Quarantine: a recently failed live migration is not planned again.

Nova marks a live migration ``failed`` or ``error`` when the destination
or the scheduler refused it (see :mod:`nova_kronos.history`); planning the
same (server, destination) again would most likely fail the same way. The
pairs are indexed once by the planning state (``quarantine_v`` /
``quarantine_h``, one candidate and host index per pair, and
``quarantine_all`` for servers refused with no destination recorded), so a
check costs ``O(V + H + Q)`` on top of the mask it returns.
"""

import numpy as np


def allowed(state, servers, hosts):
    """False for quarantined (server, destination) pairs.

    :param state: a :class:`~nova_kronos.planner.state.PlanningState`.
    :param servers: candidate indexes [V'], distinct.
    :param hosts: host indexes [H'], distinct.
    :returns: bool array [V', H'].
    """
    ok = np.ones((len(servers), len(hosts)), dtype=bool)
    ok[state.quarantine_all[servers]] = False
    if len(state.quarantine_v):
        row = np.full(len(state.servers), -1, dtype=int)
        row[servers] = np.arange(len(servers))
        col = np.full(len(state.host_names), -1, dtype=int)
        col[hosts] = np.arange(len(hosts))
        r, c = row[state.quarantine_v], col[state.quarantine_h]
        hit = (r >= 0) & (c >= 0)
        ok[r[hit], c[hit]] = False
    return ok
