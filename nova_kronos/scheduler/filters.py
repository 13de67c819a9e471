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


"""Nova scheduler filter rejecting hosts loaded above a policy threshold.

Enable it in nova.conf::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = nova_kronos.scheduler.filters.PrometheusFilter
    enabled_filters = ...,PrometheusFilter

A host fails when its load for any enabled policy is above that policy's
``threshold``. A host without data passes. When loads cannot be fetched at
all, every host passes (``[kronos] filter_fail_open = true``, the default)
or fails (false). Loads are fetched once per request through the cache
shared with the weigher; the filter never raises.
"""

from nova.scheduler import filters
from oslo_log import log as logging

from nova_kronos import conf as kronos_conf
from nova_kronos.scheduler import loads as loads_mod

LOG = logging.getLogger(__name__)
CONF = kronos_conf.CONF


class PrometheusFilter(filters.BaseHostFilter):
    """Reject hosts whose load exceeds a policy's threshold."""

    # Loads do not change within one request.
    run_filter_once_per_request = False
    RUN_ON_REBUILD = False

    def filter_all(self, filter_obj_list, spec_obj):
        # One cache lookup per request, bound to this request's generator
        # (no instance state shared between concurrent requests).
        try:
            table = loads_mod.shared_cache().get()
        except Exception:  # never break scheduling
            LOG.exception('kronos: filter could not fetch loads')
            table = None
        for host_state in filter_obj_list:
            if self._passes(host_state, table):
                yield host_state

    def host_passes(self, host_state, spec_obj):
        return self._passes(host_state, loads_mod.shared_cache().get())

    @staticmethod
    def _passes(host_state, table):
        if table is None:
            return CONF.kronos.filter_fail_open
        row = table.loads.get(host_state.host)
        if row is None:
            return True
        for policy, load in zip(table.policies, row):
            if load > policy.threshold:  # NaN compares False: passes
                LOG.debug('kronos: %s rejected, %s load %.3f above %.3f',
                          host_state.host, policy.name, load,
                          policy.threshold)
                return False
        return True
