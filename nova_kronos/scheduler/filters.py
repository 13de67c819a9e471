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


"""Nova scheduler filter rejecting hosts a server would load above a threshold.

Enable it in nova.conf::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = nova_kronos.scheduler.filters.PrometheusFilter
    enabled_filters = ...,PrometheusFilter

A host fails when, for any enabled policy, the load it would have after
taking the server (:func:`nova_kronos.scheduler.loads.loads_after`:
measured load, servers placed since the last fetch, the request's flavor)
breaks :func:`nova_kronos.scoring.within_threshold`, the rule the pack
weigher and the rebalance planner apply too. A host without data passes.
When loads cannot be fetched at all, every host passes
(``[kronos] filter_fail_open = true``, the default) or fails (false).

Like Nova's own usage filters it does not run for a rebuild
(``RUN_ON_REBUILD = False``, checked by Nova's ``BaseHostFilter``): the
server stays on its host. Loads are fetched at most once per request,
shared with the weigher; the filter never raises.
"""

from nova.scheduler import filters
from nova.scheduler import utils as scheduler_utils
from oslo_log import log as logging

from nova_kronos.scheduler import loads as loads_mod
from nova_kronos import scoring

LOG = logging.getLogger(__name__)


class PrometheusFilter(filters.BaseHostFilter):
    """Reject hosts a server would load above a policy's threshold."""

    # The hosts' loads change with every instance of a multi-create.
    run_filter_once_per_request = False
    RUN_ON_REBUILD = False

    def filter_all(self, filter_obj_list, spec_obj):
        """Hosts that pass, judged together in one pass per request.

        A rebuild goes through Nova's per-host path, whose guard passes
        every host of a filter with ``RUN_ON_REBUILD = False``.
        """
        hosts = list(filter_obj_list)
        try:
            if scheduler_utils.request_is_rebuild(spec_obj):
                return super().filter_all(hosts, spec_obj)
            return self._passing(hosts, spec_obj)
        except Exception:  # never break scheduling
            LOG.exception('kronos: filter failed; passing every host')
            return hosts

    def host_passes(self, host_state, spec_obj):
        """One host (Nova's per-host path; :meth:`filter_all` is faster)."""
        try:
            return bool(self._passing([host_state], spec_obj))
        except Exception:  # never break scheduling
            LOG.exception('kronos: filter failed; passing the host')
            return True

    @staticmethod
    def _passing(hosts, spec_obj):
        """The hosts that pass, in order."""
        cache = loads_mod.shared_cache()
        table = cache.get(spec_obj)
        if table is None:
            return hosts if cache.settings.kronos.filter_fail_open else []
        names, after = loads_mod.loads_after(
            table, cache.placements, hosts, spec_obj, cache.clock())
        ok = scoring.within_threshold(
            after, table.thresholds[:, None]).all(axis=0)
        if ok.all():
            cache.remember_after(spec_obj, table, hosts, after)
            return hosts
        passing = [h for h, k in zip(hosts, ok.tolist()) if k]
        cache.remember_after(spec_obj, table, passing, after[:, ok])
        if LOG.isEnabledFor(10):  # DEBUG
            for h in (~ok).nonzero()[0]:
                LOG.debug('kronos: %s rejected, loads after placing %s, '
                          'thresholds %s', names[h], after[:, h].round(3),
                          table.thresholds)
        return passing
