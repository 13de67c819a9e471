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


"""oslo.config options of nova-kronos.

The options live in nova.conf next to Nova's own, so the weigher and filter
read them inside nova-scheduler, and ``nova-kronos-manage`` reads the same
file through ``--config-file``. ``list_opts()`` feeds oslo-config-generator
(entry point ``oslo.config.opts = nova_kronos = nova_kronos.conf:list_opts``).
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

kronos_group = cfg.OptGroup(
    'kronos', title='nova-kronos',
    help='Load-aware weigher, filter and rebalancer driven by Prometheus.')
prometheus_group = cfg.OptGroup(
    'kronos_prometheus', title='nova-kronos Prometheus access')
rebalance_group = cfg.OptGroup(
    'kronos_rebalance', title='nova-kronos rebalance command')
nova_group = cfg.OptGroup(
    'kronos_nova', title='nova-kronos Nova API credentials',
    help='keystoneauth1 options used by "nova-kronos-manage kronos '
         'rebalance" to reach the Nova and Placement APIs, as Nova does for '
         'its own service clients. Ignored when [kronos_rebalance] cloud '
         'names a clouds.yaml cloud.')

kronos_opts = [
    cfg.StrOpt('policies_file', default='/etc/nova/kronos-policies.yaml',
               help='Path of the policies YAML file (see '
                    'etc/nova-kronos/policies.yaml.sample).'),
    cfg.StrOpt('metric_source', default='prometheus',
               help='Metric source plugin (stevedore namespace '
                    'nova_kronos.metric_sources): "prometheus", or "file" '
                    'to read a JSON snapshot from metrics_file.'),
    cfg.StrOpt('metrics_file',
               help='JSON snapshot read by the "file" metric source.'),
    cfg.FloatOpt('weigher_cache_ttl', default=30.0, min=0.0,
                 help='Seconds the weigher and filter reuse host loads '
                      'fetched from the metric source, counted from the '
                      'end of a successful fetch. 0 fetches once per '
                      'scheduling request (the filter and the weigher of '
                      'one request share it). Between two fetches the '
                      'servers placed since are added to the loads (see '
                      'doc/source/scheduler.rst, "Bursts").'),
    cfg.FloatOpt('weight_multiplier', default=50.0,
                 help='Multiplier of the kronos weigher. Its raw weight is '
                      'the host\'s score in load units (1 - load for a '
                      'spread policy, weighted over the policies), not '
                      'stretched per request, so a score difference d adds '
                      'multiplier * d. Nova\'s default weighers that vary '
                      'between ordinary hosts (RAM, CPU, disk, I/O ops, '
                      'hypervisor version) add at most 1.0 each; with 50, '
                      'a host whose score is higher by more than 0.1 wins '
                      'whatever they say (doc/source/scheduler.rst). '
                      'Overridden per aggregate by the aggregate metadata '
                      'key kronos_weight_multiplier (the minimum wins when '
                      'a host is in several aggregates, as for Nova\'s own '
                      'weighers).'),
    cfg.FloatOpt('fetch_timeout', default=2.0, min=0.1,
                 help='Seconds one refresh of host loads by the weigher '
                      'and filter may take in all: every policy\'s query, '
                      'retries and a slow or trickling server included. '
                      'Past it the request goes on with neutral weights '
                      '(and filter_fail_open).'),
    cfg.FloatOpt('failure_backoff', default=10.0, min=0.0,
                 help='After host loads could not be fetched, seconds '
                      'before the weigher/filter try again (meanwhile they '
                      'use neutral weights / the fail-open setting). Bounds '
                      'how often an unreachable Prometheus can delay a '
                      'scheduling request by up to [kronos_prometheus] '
                      'timeout.'),
    cfg.BoolOpt('filter_fail_open', default=True,
                help='When host loads cannot be fetched, let the filter '
                     'pass every host (true) or reject every host (false).'),
    cfg.FloatOpt('log_interval', default=60.0, min=0.0,
                 help='Minimum seconds between two warnings about an '
                      'unreachable metric source from the weigher/filter.'),
]

prometheus_opts = [
    cfg.URIOpt('url', default='http://127.0.0.1:9090',
               schemes=['http', 'https'], secret=True,
               help='Base URL of the Prometheus HTTP API, including any '
                    'path prefix (e.g. https://mon.example.org/prometheus). '
                    'Credentials in it (user:password@) are refused: use '
                    'username/password or bearer_token. Marked secret so '
                    'that option dumps never print one written there '
                    'anyway.'),
    cfg.FloatOpt('timeout', default=5.0, min=0.1,
                 help='Seconds before one PromQL query times out.'),
    cfg.IntOpt('retries', default=1, min=0,
               help='Retries of a failed PromQL query.'),
    cfg.StrOpt('ca_file', help='CA bundle to verify the Prometheus TLS '
                               'certificate.'),
    cfg.BoolOpt('insecure', default=False,
                help='Skip TLS certificate verification.'),
    cfg.StrOpt('username', help='HTTP basic auth user name.'),
    cfg.StrOpt('password', secret=True, help='HTTP basic auth password.'),
    cfg.StrOpt('bearer_token', secret=True,
               help='Bearer token sent in the Authorization header.'),
    cfg.FloatOpt('scrape_interval', default=60.0, min=0.0,
                 help='Largest scrape interval of the exporters the '
                      'policies read. A policy without settle_time is '
                      'taken to reflect a live migration fully after its '
                      'longest PromQL range window plus this; until then '
                      'the rebalancer overlays the migration on the '
                      'measured loads.'),
]

rebalance_opts = [
    cfg.ListOpt('aggregates', default=[],
                help='Host aggregates to rebalance. Empty means every '
                     'aggregate (within availability_zone, if set).'),
    cfg.StrOpt('availability_zone',
               help='Only rebalance aggregates of this availability zone.'),
    cfg.BoolOpt('dry_run', default=True,
                help='Plan without migrating unless --execute is given.'),
    cfg.IntOpt('max_migrations', default=5, min=0,
               help='Largest number of live migrations one run plans.'),
    cfg.FloatOpt('min_improvement', default=0.001, min=0.0,
                 deprecated_for_removal=True,
                 deprecated_reason='An absolute drop of the imbalance '
                                   'means less the more hosts an aggregate '
                                   'has (from about 100 hosts no move '
                                   'reached 0.001); aggressiveness and '
                                   'target_imbalance replace it.',
                 help='Ignored. Use aggressiveness and target_imbalance.'),
    cfg.IntOpt('aggressiveness', default=3, min=1, max=5,
               help='How much imbalance is tolerated and how small a move '
                    'is still worth a live migration, numbered as VMware '
                    'DRS numbers its migration threshold. Level: tolerated '
                    'combined imbalance / smallest gain of a move in '
                    'host-load units (the share of a host\'s load moved '
                    'from a host one standard deviation above the mean to '
                    'one below, the same at 20 or 1000 hosts): 1: only '
                    'relieve hosts above a policy threshold; 2: 0.10 / '
                    '0.02; 3: 0.05 / 0.005; 4: 0.02 / 0.002; 5: 0 / '
                    '0.0005. At every level a move off a host above a '
                    'threshold qualifies with any gain.'),
    cfg.FloatOpt('target_imbalance', min=0.0, max=0.5,
                 help='Stop moving servers inside an aggregate once its '
                      'combined imbalance is at or below this. Default: '
                      'the aggressiveness level\'s tolerated imbalance.'),
    cfg.BoolOpt('migration_cost', default=True,
                help='Rank moves by imbalance gain per GiB the live '
                     'migration copies (RAM, plus the root disk for a '
                     'block migration, plus 1 GiB for the fixed cost of a '
                     'migration), so that for equal gain the smaller '
                     'server moves. False ranks by gain alone.'),
    cfg.FloatOpt('max_migrated_gib', min=0.0,
                 help='Largest total of GiB one run\'s live migrations may '
                      'copy. Default: no limit.'),
    cfg.BoolOpt('shared_storage', default=False,
                help='Instance disks are on shared storage (Ceph RBD, NFS): '
                     'live migrations copy RAM only. When False, a server '
                     'booted from an image is counted with its root disk '
                     '(block migration); volume-backed servers never are.'),
    cfg.FloatOpt('migration_rate', default=1000.0, min=1.0,
                 help='MiB/s one live migration is assumed to copy, for the '
                      'duration estimates of the report (about 1100 on a '
                      'dedicated 10 Gbit/s link; Nova\'s [libvirt] '
                      'live_migration_bandwidth caps it when set).'),
    cfg.BoolOpt('drain_disabled', default=False,
                help='When a host in scope has its nova-compute service '
                     'disabled but up and still holds servers, plan the '
                     'drain of those hosts instead of balancing (the '
                     'next run balances once they are empty).'),
    cfg.IntOpt('migration_timeout', default=600, min=1,
               help='Seconds to wait for one live migration to finish.'),
    cfg.FloatOpt('poll_interval', default=2.0, min=0.01,
                 help='Seconds between two polls of a live migration.'),
    cfg.StrOpt('planner', default='spread',
               help='Planner plugin (stevedore namespace '
                    'nova_kronos.planners): spread (even out the load of '
                    'spread-mode policies) or pack (empty the least loaded '
                    'hosts, for pack-mode policies).'),
    cfg.StrOpt('feasibility', default='auto',
               choices=[
                   ('auto', 'scheduler when this nova.conf gives access to '
                            "Nova's API database, else api"),
                   ('scheduler', "Nova's RequestSpecs, request filters, "
                                 'Placement allocation candidates and every '
                                 '[filter_scheduler] enabled_filters filter, '
                                 'evaluated in-process with the database '
                                 'access nova-manage has'),
                   ('api', 'Placement allocation candidates and the '
                           'aggregate-metadata filters, through the APIs '
                           'only; servers needing more (dedicated CPUs, '
                           'NUMA, PCI, vGPU, image properties checked '
                           'against the hypervisor) are not moved'),
                   ('none', 'only the planner\'s own constraints (vCPU/RAM, '
                            'zone, liveness, server groups, thresholds)')],
               help="How each planned live migration is checked against "
                    "Nova's own scheduling rules before it is planned, so "
                    "that no move is one Nova refuses."),
    cfg.StrOpt('cloud',
               help='clouds.yaml cloud name for the Nova API. When unset, '
                    'the [kronos_nova] keystoneauth options are used.'),
    cfg.IntOpt('interval', default=0, min=0,
               help='Seconds between runs in periodic mode (--periodic); '
                    '0 means 300.'),
    cfg.IntOpt('max_parallel', default=2, min=1,
               help='Live migrations in flight at once. Whatever this '
                    'value, at most one runs per host (as source or '
                    'destination; Nova\'s max_concurrent_live_migrations '
                    'defaults to 1 per compute) and moves sharing a server '
                    'group run one after the other.'),
    cfg.IntOpt('max_failures', default=3, min=1,
               help='After this many refused, failed or timed-out moves '
                    'in one run, nothing more is submitted. Below it, a '
                    'failed move quarantines its (server, host) pair and '
                    'the rest of the budget is planned again from a fresh '
                    'read of the cloud.'),
    cfg.FloatOpt('cooldown', default=3600.0, min=0.0,
                 help='Seconds a server is not moved again after a live '
                      'migration, read from Nova\'s migration records. '
                      'Doubles with each further migration of the server '
                      'within cooldown_window, up to cooldown_max. 0 '
                      'disables.'),
    cfg.FloatOpt('cooldown_max', default=86400.0, min=0.0,
                 help='Cap of the per-server cooldown (seconds).'),
    cfg.FloatOpt('cooldown_window', default=86400.0, min=0.0,
                 help='Rolling window (seconds) in which a server\'s live '
                      'migrations count towards its cooldown backoff.'),
    cfg.FloatOpt('quarantine_time', default=3600.0, min=0.0,
                 help='Seconds a (server, destination host) whose live '
                      'migration was refused or failed is not planned '
                      'again. 0 disables.'),
    cfg.StrOpt('state_dir', default='/var/lib/nova/kronos',
               help='Directory of the default file lock backend (the '
                    'only local state of nova-kronos).'),
    cfg.StrOpt('lock_url', secret=True,
               help='tooz backend URL of the per-aggregate rebalance '
                    'locks. Default: file://<state_dir>/locks (one '
                    'controller). With several controllers use a shared '
                    'service, e.g. etcd3+http://etcd:2379, '
                    'redis://redis:6379 or zookeeper://zk:2181.'),
    cfg.FloatOpt('lock_timeout', default=0.0, min=0.0,
                 help='Seconds to wait for another run to release the lock '
                      'of an aggregate before giving up (exit code 5).'),
    cfg.FloatOpt('stop_grace', default=300.0, min=0.0,
                 help='After SIGINT or SIGTERM, seconds to wait for '
                      'in-flight live migrations before exiting (a second '
                      'signal aborts them through Nova at once).'),
]


def register_opts(conf):
    """Register every nova-kronos option group on ``conf``.

    Each call registers new ``OptGroup`` objects: oslo.config copies a
    registered group shallowly, so two ConfigOpts registering the same
    group object share its per-option state, and an override set on one
    (e.g. on Nova's global CONF) would show in the other.
    """
    for group, opts in ((kronos_group, kronos_opts),
                        (prometheus_group, prometheus_opts),
                        (rebalance_group, rebalance_opts),
                        (nova_group, None)):
        fresh = cfg.OptGroup(group.name, title=group.title, help=group.help)
        conf.register_group(fresh)
        if opts:
            conf.register_opts(opts, group=fresh)
    ks_loading.register_session_conf_options(conf, nova_group.name)
    ks_loading.register_auth_conf_options(conf, nova_group.name)
    ks_loading.register_adapter_conf_options(conf, nova_group.name)


def _keystone_opts():
    opts = (ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_adapter_conf_options(include_deprecated=False))
    opts += ks_loading.get_auth_plugin_conf_options('password')
    seen, unique = set(), []
    for opt in opts:
        if opt.dest not in seen:
            seen.add(opt.dest)
            unique.append(opt)
    return unique


def list_opts():
    """Options for oslo-config-generator, as (group, opts) pairs."""
    return [
        (kronos_group, kronos_opts),
        (prometheus_group, prometheus_opts),
        (rebalance_group, rebalance_opts),
        (nova_group, _keystone_opts()),
    ]


CONF = cfg.CONF
register_opts(CONF)
