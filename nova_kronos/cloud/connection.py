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


"""An openstacksdk Connection for the rebalancer, as Nova builds its clients.

Credentials come from a clouds.yaml cloud (``--cloud`` or
``[kronos_rebalance] cloud``) or from the keystoneauth1 options of
``[kronos_nova]`` (``auth_type``, ``auth_url``, ``username``, ...), the way
Nova configures its own service clients (``[placement]``, ``[neutron]``).
"""


class ConnectionConfigError(Exception):
    """The credentials options are incomplete or wrong."""


def connect(conf, cloud=None):
    """An openstacksdk ``Connection`` from clouds.yaml or ``[kronos_nova]``.

    No compute microversion is pinned: openstacksdk negotiates each call
    (live migration >= 2.30, server groups with rules 2.64, ...).

    :param conf: ConfigOpts with the nova-kronos options registered.
    :param cloud: clouds.yaml cloud name; None uses ``[kronos_nova]``.
    :raises ConnectionConfigError: the cloud or the options are unusable.
    """
    from keystoneauth1 import loading as ks_loading
    import openstack
    try:
        if cloud:
            return openstack.connect(cloud=cloud)
        auth = ks_loading.load_auth_from_conf_options(conf, 'kronos_nova')
        sess = ks_loading.load_session_from_conf_options(
            conf, 'kronos_nova', auth=auth)
        opts = conf.kronos_nova
        return openstack.connection.Connection(
            session=sess, region_name=opts.region_name,
            interface=(opts.valid_interfaces or ['public'])[0])
    except Exception as e:
        raise ConnectionConfigError(
            'cannot set up Nova API credentials (%s); set [kronos_nova] '
            'auth_type/auth_url/... in nova.conf or --cloud NAME: %s'
            % ('cloud %s' % cloud if cloud else '[kronos_nova]', e)) from e
