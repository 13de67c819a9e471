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


"""Constraints on moves: which server may go to which host.

Each constraint is a callable ``(state, servers, hosts) -> bool array
[len(servers), len(hosts)]`` over index arrays into a
:class:`nova_kronos.planner.state.PlanningState`; True means allowed. They
are pure numpy over indexed arrays (no scan of the fleet per candidate), and
are applied in order by the planner, which counts how many candidate moves
each one rejected so a plan can say why a host was not chosen.

This package is part of the pure core: it imports neither Nova nor
openstacksdk.
"""

from nova_kronos.constraints import capacity
from nova_kronos.constraints import hosts
from nova_kronos.constraints import quarantine
from nova_kronos.constraints import server_groups

#: (name, callable) in the order they are applied. A pair is counted
#: against the first one that rejects it, so ``quarantine``, last, counts
#: only the moves recent failures alone keep out of the plan.
DEFAULT = (
    ('host-usable', hosts.usable),
    ('availability-zone', hosts.same_availability_zone),
    ('capacity', capacity.fits),
    ('threshold', capacity.under_threshold),
    ('server-group', server_groups.allowed),
    ('quarantine', quarantine.allowed),
)
