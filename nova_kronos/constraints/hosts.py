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


"""Host liveness and availability-zone constraints."""


def usable(state, servers, hosts):
    """Destination's nova-compute service is up, enabled, not forced down."""
    return state.usable[hosts][None, :].repeat(len(servers), axis=0)


def same_availability_zone(state, servers, hosts):
    """Destination is in the source host's availability zone.

    Nova refuses a live migration across availability zones for a server
    booted into one; we keep every move inside its zone regardless.
    """
    src_az = state.az[state.src[servers]]
    return src_az[:, None] == state.az[hosts][None, :]
