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

import os
import tempfile
from unittest import mock

import jsonschema
import testtools

from nova_kronos import policy

GOOD = """
policies:
  cpu:
    mode: spread
    weight: 0.7
    threshold: 0.85
    host_query: up
    host_label: nodename
    vm_query: up
    vm_label: instance_id
  mem:
    mode: pack
    weight: 0.3
    threshold: 0.9
    resource: memory_mb
    host_query: up
    host_label: nodename
    vm_query: up
    vm_label: instance_id
  idle:
    enabled: false
    mode: spread
    weight: 0.9
    threshold: 0.5
    host_query: up
    host_label: nodename
    vm_query: up
    vm_label: instance_id
"""


class TestLoad(testtools.TestCase):

    def test_good_file(self):
        ps = policy.loads(GOOD, source='p.yaml')
        self.assertEqual(['cpu', 'mem'], [p.name for p in ps.enabled])
        self.assertEqual('pack', ps.get('mem').mode)
        self.assertEqual('memory_mb', ps.get('mem').resource)
        self.assertFalse(ps.get("idle").enabled)

    def test_sample_file_is_valid(self):
        here = os.path.dirname(__file__)
        path = os.path.join(here, '..', '..', 'etc', 'nova-kronos',
                            'policies.yaml.sample')
        ps = policy.load_file(path)
        self.assertEqual(1.0, sum(p.weight for p in ps.enabled))

    def _error(self, text):
        e = self.assertRaises(policy.PolicyError, policy.loads, text,
                              source='/etc/nova/kronos.yaml')
        self.assertIn('/etc/nova/kronos.yaml', str(e))
        return str(e)

    def test_error_names_file_policy_and_field(self):
        msg = self._error(GOOD.replace('threshold: 0.85', 'threshold: 1.5'))
        self.assertIn("policy 'cpu'", msg)
        self.assertIn('"threshold"', msg)

    def test_missing_field(self):
        msg = self._error(GOOD.replace('    host_label: nodename\n', '', 1))
        self.assertIn("policy 'cpu'", msg)
        self.assertIn('"host_label" is required', msg)

    def test_bad_mode(self):
        msg = self._error(GOOD.replace('mode: pack', 'mode: packed'))
        self.assertIn("policy 'mem'", msg)
        self.assertIn('"mode"', msg)

    def test_weights_must_sum_to_one(self):
        msg = self._error(GOOD.replace('weight: 0.3', 'weight: 0.4'))
        self.assertIn('sum to 1', msg)
        self.assertIn('cpu=0.7', msg)

    def test_unknown_field(self):
        msg = self._error(GOOD.replace('mode: pack',
                                       'mode: pack\n    tresh: 1'))
        self.assertIn('tresh', msg)

    def test_weight_not_a_number(self):
        msg = self._error(GOOD.replace('weight: 0.7', 'weight: high'))
        self.assertIn('"weight"', msg)

    def test_not_yaml(self):
        msg = self._error('policies: [unclosed')
        self.assertIn('not valid YAML', msg)

    def test_no_policies(self):
        self.assertIn('"policies"', self._error('host_mapping: {}'))

    def test_missing_file(self):
        e = self.assertRaises(policy.PolicyError, policy.load_file,
                              '/nonexistent/kronos.yaml')
        self.assertIn('/nonexistent/kronos.yaml', str(e))

    def test_file_error_names_path(self):
        with tempfile.NamedTemporaryFile('w', suffix='.yaml') as f:
            f.write('policies: {}\n')
            f.flush()
            e = self.assertRaises(policy.PolicyError, policy.load_file,
                                  f.name)
        self.assertIn(f.name, str(e))


class TestHostMapping(testtools.TestCase):

    def test_strip_port_and_domain(self):
        m = policy.HostMapping(strip_port=True, strip_domain=True)
        self.assertEqual('cmp1', m.to_host('cmp1.example.org:9100'))
        self.assertEqual('10.0.0.5', m.to_host('10.0.0.5:9100'))
        self.assertEqual('::1', m.to_host('[::1]:9100'))

    def test_alias_first(self):
        m = policy.HostMapping(aliases=(('node-a:9100', 'compute-7'),))
        self.assertEqual('compute-7', m.to_host('node-a:9100'))
        self.assertEqual('node-b', m.to_host('node-b:9100'))

    def test_no_stripping(self):
        m = policy.HostMapping(strip_port=False)
        self.assertEqual('cmp1:9100', m.to_host('cmp1:9100'))

    def test_bad_aliases(self):
        e = self.assertRaises(policy.PolicyError, policy.loads,
                              GOOD + 'host_mapping:\n  aliases: [a]\n',
                              source='x.yaml')
        self.assertIn('host_mapping', str(e))


class TestYamlTraps(testtools.TestCase):

    def test_boolean_policy_name_is_explained(self):
        e = self.assertRaises(policy.PolicyError, policy.loads,
                              GOOD.replace('  idle:', '  off:'),
                              source='p.yaml')
        self.assertIn('quote it', str(e))

    def test_boolean_value_is_explained(self):
        # "mode: off" is the boolean False to YAML.
        e = self.assertRaises(policy.PolicyError, policy.loads,
                              GOOD.replace('mode: pack', 'mode: off'),
                              source='p.yaml')
        msg = str(e)
        self.assertIn('p.yaml', msg)
        self.assertIn("policy 'mem'", msg)
        self.assertIn('field "mode"', msg)
        self.assertIn('got False', msg)
        self.assertIn('quote it', msg)

    def test_boolean_string_field_is_explained(self):
        e = self.assertRaises(policy.PolicyError, policy.loads,
                              GOOD.replace('host_label: nodename',
                                           'host_label: yes', 1),
                              source='p.yaml')
        msg = str(e)
        self.assertIn('p.yaml', msg)
        self.assertIn("policy 'cpu'", msg)
        self.assertIn('field "host_label" must be a string, got True', msg)
        self.assertIn('quote it', msg)

    def test_number_policy_name_is_explained(self):
        e = self.assertRaises(policy.PolicyError, policy.loads,
                              GOOD.replace('  idle:', '  1:'),
                              source='p.yaml')
        self.assertIn('p.yaml: policy 1: policy names must be strings',
                      str(e))
        self.assertIn('quote it', str(e))

    def test_non_string_alias_key_is_explained(self):
        e = self.assertRaises(policy.PolicyError, policy.loads,
                              GOOD + 'host_mapping:\n  aliases: {on: c1}\n',
                              source='p.yaml')
        msg = str(e)
        self.assertIn('p.yaml: host_mapping: field "aliases"', msg)
        self.assertIn('True', msg)
        self.assertIn('quote it', msg)

    def test_non_string_field_key_is_explained(self):
        e = self.assertRaises(policy.PolicyError, policy.loads,
                              GOOD.replace('mode: pack',
                                           'mode: pack\n    no: 1'),
                              source='p.yaml')
        msg = str(e)
        self.assertIn("p.yaml: policy 'mem'", msg)
        self.assertIn('False', msg)
        self.assertIn('quote it', msg)


class TestSchemaErrors(testtools.TestCase):
    """Structural errors: one line per problem, file, policy and field."""

    SOURCE = '/etc/nova/kronos.yaml'

    def _error(self, text):
        e = self.assertRaises(policy.PolicyError, policy.loads, text,
                              source=self.SOURCE)
        msg = str(e)
        for line in msg.splitlines():
            self.assertTrue(line.startswith(self.SOURCE + ': '), line)
        return msg

    def _policy_error(self, text, name, field):
        msg = self._error(text)
        self.assertIn("policy '%s'" % name, msg)
        self.assertIn('field "%s"' % field, msg)
        return msg

    def test_message_format(self):
        # The example of the message format in the module documentation.
        msg = self._error(GOOD.replace('mode: spread', 'mode: sideways', 1))
        self.assertEqual("/etc/nova/kronos.yaml: policy 'cpu': field "
                         "\"mode\" must be one of spread, pack, got "
                         "'sideways'", msg)

    def test_weight_wrong_type(self):
        msg = self._policy_error(
            GOOD.replace('weight: 0.7', 'weight: "0.7"'), 'cpu', 'weight')
        self.assertIn("must be a number, got '0.7'", msg)

    def test_weight_boolean(self):
        msg = self._policy_error(
            GOOD.replace('weight: 0.7', 'weight: true'), 'cpu', 'weight')
        self.assertIn('must be a number, got True', msg)

    def test_weight_out_of_range(self):
        msg = self._policy_error(
            GOOD.replace('weight: 0.3', 'weight: -0.3'), 'mem', 'weight')
        self.assertIn('must be in [0, 1], got -0.3', msg)

    def test_weight_nan(self):
        msg = self._policy_error(
            GOOD.replace('weight: 0.3', 'weight: .nan'), 'mem', 'weight')
        self.assertIn('finite', msg)

    def test_threshold_above_one(self):
        msg = self._policy_error(
            GOOD.replace('threshold: 0.9', 'threshold: 1.01'), 'mem',
            'threshold')
        self.assertIn('must be in (0, 1], got 1.01', msg)

    def test_threshold_zero(self):
        # The lower bound is exclusive: a ceiling of 0 admits no host.
        msg = self._policy_error(
            GOOD.replace('threshold: 0.9', 'threshold: 0'), 'mem',
            'threshold')
        self.assertIn('must be in (0, 1], got 0', msg)

    def test_threshold_one_is_allowed(self):
        ps = policy.loads(GOOD.replace('threshold: 0.9', 'threshold: 1'))
        self.assertEqual(1.0, ps.get('mem').threshold)
        self.assertIsInstance(ps.get('mem').threshold, float)

    def test_unknown_field_in_policy(self):
        msg = self._error(GOOD.replace('mode: pack',
                                       'mode: pack\n    tresh: 1'))
        self.assertIn("policy 'mem'", msg)
        self.assertIn('unknown field(s) "tresh"', msg)
        self.assertIn('threshold', msg)  # the expected fields are listed

    def test_unknown_top_level_field(self):
        msg = self._error(GOOD + 'policy:\n  cpu: {}\n')
        self.assertIn('unknown top-level field(s) "policy"', msg)

    def test_unknown_host_mapping_field(self):
        msg = self._error(GOOD + 'host_mapping:\n  strip_ports: true\n')
        self.assertIn('host_mapping: unknown field(s) "strip_ports"', msg)

    def test_aliases_wrong_type(self):
        msg = self._error(GOOD + 'host_mapping:\n  aliases: [a, b]\n')
        self.assertIn('host_mapping: field "aliases" must be a mapping, '
                      "got ['a', 'b']", msg)

    def test_alias_value_wrong_type(self):
        msg = self._error(GOOD + 'host_mapping:\n  aliases: {n1: off}\n')
        self.assertIn('host_mapping: field "aliases"', msg)
        self.assertIn("'n1' must be a string, got False", msg)
        self.assertIn('quote it', msg)

    def test_strip_port_wrong_type(self):
        msg = self._error(GOOD + 'host_mapping:\n  strip_port: "yes"\n')
        self.assertIn('host_mapping: field "strip_port" must be true or '
                      "false, got 'yes'", msg)

    def test_empty_host_mapping_and_aliases_are_allowed(self):
        ps = policy.loads(GOOD + 'host_mapping:\n  aliases:\n')
        self.assertEqual(policy.HostMapping(), ps.host_mapping)
        ps = policy.loads(GOOD + 'host_mapping:\n')
        self.assertEqual(policy.HostMapping(), ps.host_mapping)

    def test_host_mapping_values_are_used(self):
        ps = policy.loads(GOOD + 'host_mapping:\n  strip_domain: true\n'
                          '  strip_port: false\n  aliases: {b: c, a: d}\n')
        self.assertEqual(policy.HostMapping(
            strip_port=False, strip_domain=True,
            aliases=(('a', 'd'), ('b', 'c'))), ps.host_mapping)

    def test_name_pattern(self):
        msg = self._error(GOOD.replace('  idle:', '  "idle policy":'))
        self.assertIn("policy 'idle policy': name must match", msg)

    def test_empty_query(self):
        msg = self._policy_error(
            GOOD.replace('vm_query: up', "vm_query: ''", 1), 'cpu',
            'vm_query')
        self.assertIn('must not be empty', msg)

    def test_blank_query(self):
        msg = self._policy_error(
            GOOD.replace('host_query: up', 'host_query: "  "', 2)
            .replace('host_query: "  "', 'host_query: up', 1), 'mem',
            'host_query')
        self.assertIn('must not be empty', msg)

    def test_missing_query(self):
        msg = self._policy_error(
            GOOD.replace('host_query: up', 'host_query:', 1), 'cpu',
            'host_query')
        self.assertIn('must be a string, got null', msg)

    def test_bad_resource(self):
        msg = self._policy_error(
            GOOD.replace('resource: memory_mb', 'resource: disk_gb'), 'mem',
            'resource')
        self.assertIn("must be one of vcpu, memory_mb, got 'disk_gb'", msg)

    def test_enabled_wrong_type(self):
        msg = self._policy_error(
            GOOD.replace('enabled: false', 'enabled: "false"'), 'idle',
            'enabled')
        self.assertIn("must be true or false, got 'false'", msg)

    def test_policy_not_a_mapping(self):
        msg = self._error('policies:\n  cpu: spread\n')
        self.assertIn("policy 'cpu': must be a mapping, got 'spread'", msg)

    def test_top_level_not_a_mapping(self):
        self.assertIn('top level must be a mapping', self._error('- cpu\n'))
        self.assertIn('top level must be a mapping', self._error(''))

    def test_empty_policies(self):
        self.assertIn('field "policies" must be a non-empty mapping',
                      self._error('policies: {}\n'))

    def test_every_error_one_line_in_file_order(self):
        text = (GOOD.replace('weight: 0.7', 'weight: 7')
                .replace('mode: pack', 'mode: packed')
                .replace('vm_label: instance_id', 'vm_label: ""', 1))
        self.assertEqual(
            ["/etc/nova/kronos.yaml: policy 'cpu': field \"weight\" must be "
             "in [0, 1], got 7",
             "/etc/nova/kronos.yaml: policy 'cpu': field \"vm_label\" must "
             "not be empty",
             "/etc/nova/kronos.yaml: policy 'mem': field \"mode\" must be "
             "one of spread, pack, got 'packed'"],
            self._error(text).splitlines())

    def test_every_missing_field_named(self):
        msg = self._error('policies:\n  cpu:\n    mode: spread\n')
        for field in ('weight', 'threshold', 'host_query', 'host_label',
                      'vm_query', 'vm_label'):
            self.assertIn("policy 'cpu': field \"%s\" is required" % field,
                          msg)
        self.assertNotIn('"mode"', msg)

    def test_schema_not_checked_before_keys(self):
        # A non-string key stops validation before the schema runs.
        msg = self._error(GOOD.replace('  idle:', '  off:')
                          .replace('mode: pack', 'mode: packed'))
        self.assertIn('quote it', msg)
        self.assertNotIn('packed', msg)


class TestSchema(testtools.TestCase):

    def test_schema_is_valid_draft_2020_12(self):
        jsonschema.Draft202012Validator.check_schema(policy.SCHEMA)
        self.assertEqual('https://json-schema.org/draft/2020-12/schema',
                         policy.SCHEMA['$schema'])

    def test_every_field_is_described(self):
        defs = policy.SCHEMA['$defs']
        fields = dict(policy.SCHEMA['properties'])
        fields.update(defs['host_mapping']['properties'])
        fields.update(defs['policy']['properties'])
        for name, schema in fields.items():
            schema = defs.get(name, schema)  # follow the two $refs
            self.assertTrue(schema.get('description'), name)

    def test_defaults_match_the_model(self):
        defs = policy.SCHEMA['$defs']
        hm = defs['host_mapping']['properties']
        self.assertEqual(policy.HostMapping().strip_port,
                         hm['strip_port']['default'])
        self.assertEqual(policy.HostMapping().strip_domain,
                         hm['strip_domain']['default'])
        ps = policy.from_dict({'policies': {'p': {
            'mode': 'spread', 'weight': 1, 'threshold': 1, 'host_query': 'q',
            'host_label': 'l', 'vm_query': 'q', 'vm_label': 'l'}}})
        self.assertEqual(
            defs['policy']['properties']['enabled']['default'],
            ps.get('p').enabled)

    def test_validator_is_compiled_once(self):
        with mock.patch.object(jsonschema, 'Draft202012Validator') as v:
            policy.loads(GOOD)
        v.assert_not_called()
