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
import time
from unittest import mock

import fixtures
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


# One valid policy, one field a line, for tests that count lines.
ONE_POLICY_LINES = [
    'policies:',                 # line 1
    '  cpu:',                    # line 2
    '    mode: spread',          # line 3
    '    weight: 1',             # line 4
    '    threshold: 0.9',        # line 5
    '    host_query: up',        # line 6
    '    host_label: nodename',  # line 7
    '    vm_query: up',          # line 8
    '    vm_label: instance_id',  # line 9
]


def _lines(*lines):
    return ''.join(line + '\n' for line in lines)


class TestDuplicateKeys(testtools.TestCase):
    """YAML keeps the last of two equal keys; the loader refuses both."""

    def _error(self, text):
        e = self.assertRaises(policy.PolicyError, policy.loads, text,
                              source='p.yaml')
        return str(e)

    def test_field_twice_in_a_policy(self):
        text = _lines(*ONE_POLICY_LINES, '    weight: 0.5')  # line 10
        self.assertEqual("p.yaml: policy 'cpu': field \"weight\" is given "
                         "twice (lines 4 and 10); remove one",
                         self._error(text))

    def test_policy_defined_twice(self):
        text = _lines(*ONE_POLICY_LINES, *ONE_POLICY_LINES[1:])  # 10-17
        self.assertEqual("p.yaml: policy 'cpu' is defined twice (lines 2 "
                         "and 10); rename or remove one", self._error(text))

    def test_top_level_key_twice(self):
        text = _lines(*ONE_POLICY_LINES, *ONE_POLICY_LINES)  # again at 10
        msg = self._error(text)
        self.assertEqual('p.yaml: top-level field "policies" is given twice '
                         '(lines 1 and 10); remove one', msg)

    def test_alias_entry_and_host_mapping_field_twice(self):
        text = _lines(*ONE_POLICY_LINES,
                      'host_mapping:',          # line 10
                      '  strip_port: true',     # line 11
                      '  aliases:',             # line 12
                      '    n1: compute1',       # line 13
                      '    n1: compute2',       # line 14
                      '  strip_port: false')    # line 15
        self.assertEqual(
            ["p.yaml: host_mapping: field \"aliases\": entry 'n1' is given "
             "twice (lines 13 and 14); remove one",
             'p.yaml: host_mapping: field "strip_port" is given twice '
             '(lines 11 and 15); remove one'],
            self._error(text).splitlines())

    def test_keys_equal_only_to_yaml(self):
        # Unquoted on and yes both read as true.
        msg = self._error(_lines('on: 1', 'yes: 2'))
        self.assertEqual('p.yaml: top-level field "on" is given twice '
                         "(lines 1 and 2, as 'on' and 'yes', both True to "
                         'YAML); remove one', msg)

    def test_flow_mapping(self):
        msg = self._error(_lines(*ONE_POLICY_LINES[:2],
                                 '    {mode: spread, mode: pack}'))
        self.assertIn("policy 'cpu': field \"mode\" is given twice (lines "
                      "3 and 3)", msg)

    def test_reported_before_schema_errors(self):
        text = _lines(*ONE_POLICY_LINES, '    mode: sideways')
        msg = self._error(text)
        self.assertIn('"mode" is given twice (lines 3 and 10)', msg)
        self.assertNotIn('must be one of', msg)

    def test_merge_key_may_be_overridden(self):
        # "<<" merges another mapping's fields; overriding one of them is
        # what merging is for, not a duplicate.
        ps = policy.loads(_lines(
            'policies:',
            '  cpu: &common',
            '    mode: spread',
            '    weight: 0.5',
            '    threshold: 0.9',
            '    host_query: up',
            '    host_label: nodename',
            '    vm_query: up',
            '    vm_label: instance_id',
            '  mem:',
            '    <<: *common',
            '    mode: pack'))
        self.assertEqual('pack', ps.get('mem').mode)
        self.assertEqual(0.5, ps.get('mem').weight)
        self.assertEqual('spread', ps.get('cpu').mode)

    def test_shared_query_anchor_is_allowed(self):
        ps = policy.loads(GOOD.replace('host_query: up',
                                       'host_query: &q sum(up)', 1)
                          .replace('vm_query: up', 'vm_query: *q', 1))
        self.assertEqual('sum(up)', ps.get('cpu').vm_query)

    def test_load_file_names_the_file(self):
        with tempfile.NamedTemporaryFile('w', suffix='.yaml') as f:
            f.write(_lines(*ONE_POLICY_LINES, '    weight: 0.5'))
            f.flush()
            e = self.assertRaises(policy.PolicyError, policy.load_file,
                                  f.name)
        self.assertTrue(str(e).startswith(
            "%s: policy 'cpu': field \"weight\" is given twice (lines 4 and "
            "10)" % f.name), str(e))


class TestYamlLimits(testtools.TestCase):

    def _error(self, text):
        e = self.assertRaises(policy.PolicyError, policy.loads, text,
                              source='p.yaml')
        self.assertTrue(str(e).startswith('p.yaml: '), str(e))
        return str(e)

    def test_documented_limits(self):
        self.assertEqual(1024 * 1024, policy.MAX_FILE_BYTES)
        self.assertEqual(100000, policy.MAX_NODES)
        self.assertEqual(32, policy.MAX_DEPTH)

    def test_billion_laughs_fails_fast(self):
        # a is 10 scalars, b ten times a, ..., i: 10**9 scalars expanded.
        names = 'abcdefghi'
        text = 'a: &a [%s]\n' % ', '.join(['lol'] * 10)
        for prev, name in zip(names, names[1:]):
            text += '%s: &%s [%s]\n' % (name, name,
                                        ', '.join(['*' + prev] * 10))
        self.assertLess(len(text), 1000)
        # Walking the expansion would take hours: fail instead of hanging.
        self.useFixture(fixtures.Timeout(10, gentle=True))
        start = time.monotonic()
        msg = self._error(text)
        self.assertLess(time.monotonic() - start, 0.5)
        self.assertIn('more than 100000 YAML nodes', msg)

    def test_alias_counts_as_the_node_it_refers_to(self):
        # The anchored list is 1 + 999 nodes. The document: the mapping,
        # two keys, the anchored list (1000) and a list of n aliases
        # (1 + 1000 * n): 1004 + 1000 * n, so 98 aliases are 99 004 nodes
        # and 99 are 100 004.
        def doc(aliases):
            return 'a: &a [%s]\nb: [%s]\n' % (', '.join(['x'] * 999),
                                              ', '.join(['*a'] * aliases))
        self.assertNotIn('YAML nodes', self._error(doc(98)))
        self.assertIn('more than 100000 YAML nodes', self._error(doc(99)))

    def test_recursive_alias(self):
        msg = self._error(_lines('policies:', '  cpu: &x', '    - *x'))
        self.assertEqual('p.yaml: line 3: alias *x is inside the node it '
                         'refers to (line 2); recursive structures are not '
                         'allowed', msg)

    def test_nesting_depth(self):
        # The outermost list is level 1.
        self.assertIn('top level must be a mapping',
                      self._error('[' * 32 + ']' * 32))
        self.assertEqual('p.yaml: line 1: nested deeper than 32 levels',
                         self._error('[' * 33 + ']' * 33))
        # Deep enough to exhaust Python's recursion limit without the cap.
        self.assertIn('nested deeper', self._error('[' * 5000))

    def test_file_size(self):
        raw = GOOD.encode()
        # Exactly MAX_FILE_BYTES: a comment fills the rest (2 bytes for
        # "#" and the newline).
        exact = raw + b'#' + b'x' * (1024 * 1024 - len(raw) - 2) + b'\n'
        self.assertEqual(1048576, len(exact))
        self.assertEqual(['cpu', 'mem'],
                         [p.name for p in policy.loads(exact).enabled])
        msg = self._error(exact + b'\n')
        self.assertEqual('p.yaml: larger than 1048576 bytes (1 MiB); a '
                         'policies file is a few KiB', msg)

    def test_big_file_is_not_read_whole(self):
        opened = mock.mock_open(read_data=b'#' * (2 * 1024 * 1024))
        with mock.patch('builtins.open', opened):
            e = self.assertRaises(policy.PolicyError, policy.load_file,
                                  '/etc/nova/big.yaml')
        self.assertEqual('/etc/nova/big.yaml: larger than 1048576 bytes '
                         '(1 MiB); a policies file is a few KiB', str(e))
        opened.assert_called_once_with('/etc/nova/big.yaml', 'rb')
        # One byte past the limit is enough to know.
        opened().read.assert_called_once_with(1024 * 1024 + 1)

    def test_yaml_error_names_the_file(self):
        msg = self._error('policies: [unclosed')
        self.assertIn('not valid YAML', msg)
        self.assertIn('in "p.yaml", line 1', msg)


class TestEncoding(testtools.TestCase):

    def _file_error(self, data):
        with tempfile.NamedTemporaryFile('wb', suffix='.yaml') as f:
            f.write(data)
            f.flush()
            e = self.assertRaises(policy.PolicyError, policy.load_file,
                                  f.name)
        msg = str(e)
        self.assertTrue(msg.startswith(f.name + ': '), msg)
        return msg[len(f.name) + 2:]

    def test_latin1_byte(self):
        # "policies:\n" is 10 bytes, "  cpu:\n" 7 more; "# caf" puts the
        # Latin-1 e-acute at offset 17 + 5 = 22, on line 3.
        msg = self._file_error(b'policies:\n  cpu:\n# caf\xe9\n')
        self.assertEqual('line 3 (byte offset 22): byte 0xE9 is not UTF-8; '
                         'save the file as UTF-8 text', msg)

    def test_utf16_file(self):
        msg = self._file_error('policies: {}\n'.encode('utf-16'))
        self.assertEqual('line 1 (byte offset 0): byte 0xFF is not UTF-8; '
                         'save the file as UTF-8 text', msg)

    def test_nul_byte(self):
        # Line 2 is "  cpu:" then NUL: column 7, byte offset 10 + 6 = 16.
        msg = self._file_error(b'policies:\n  cpu:\x00\x01\x02\n')
        self.assertEqual('line 2, column 7 (byte offset 16): character '
                         'U+0000 is not allowed in YAML; a policies file is '
                         'text, not binary data', msg)

    def test_control_character_after_multibyte_text(self):
        # "# é" is 4 bytes but 3 characters: column 4, byte offset 4.
        msg = self._file_error('# \u00e9\x1b[31m\n'.encode())
        self.assertEqual('line 1, column 4 (byte offset 4): character '
                         'U+001B is not allowed in YAML; a policies file is '
                         'text, not binary data', msg)

    def test_binary_file(self):
        # NUL comes before the first byte that is not UTF-8 (0x80).
        msg = self._file_error(bytes(range(256)))
        self.assertTrue(msg.startswith('line 1, column 1 (byte offset 0): '
                                       'character U+0000 '), msg)

    def test_first_problem_is_reported(self):
        # 0xFF at offset 3 comes before the NUL at offset 5.
        msg = self._file_error(b'a: \xff\n\x00')
        self.assertTrue(msg.startswith('line 1 (byte offset 3): byte 0xFF'),
                        msg)

    def test_utf8_text_is_accepted(self):
        with tempfile.NamedTemporaryFile('wb', suffix='.yaml') as f:
            f.write(('# h\u00f4tes \u2603\n' + GOOD +
                     'host_mapping:\n  aliases: {n\u00e9ud-1: compute1}\n')
                    .encode())
            f.flush()
            ps = policy.load_file(f.name)
        self.assertEqual('compute1', ps.host_mapping.to_host('n\u00e9ud-1'))

    def test_str_with_control_character(self):
        e = self.assertRaises(policy.PolicyError, policy.loads,
                              'policies:\x07', source='p.yaml')
        self.assertIn('p.yaml: line 1, column 10 (byte offset 9): '
                      'character U+0007', str(e))


class TestLongValues(testtools.TestCase):
    """Values quoted in messages are cut; long lists are counted."""

    def _error(self, text):
        e = self.assertRaises(policy.PolicyError, policy.loads, text,
                              source='p.yaml')
        return str(e)

    def test_long_enum_value(self):
        msg = self._error(GOOD.replace('mode: pack', 'mode: ' + 'p' * 5000))
        self.assertEqual(
            "p.yaml: policy 'mem': field \"mode\" must be one of spread, "
            "pack, got '%s...' (5000 characters)" % ('p' * 80), msg)

    def test_long_policy_name(self):
        # YAML's simple keys stop at 1024 characters.
        msg = self._error(GOOD.replace('  idle:', '  %s:' % ('n' * 1000))
                          .replace('threshold: 0.5', 'threshold: 5'))
        self.assertEqual("p.yaml: policy '%s...' (1000 characters): field "
                         '"threshold" must be in (0, 1], got 5' % ('n' * 80),
                         msg)

    def test_long_unknown_field(self):
        msg = self._error(GOOD.replace('mode: pack',
                                       'mode: pack\n    %s: 1' % ('f' * 900)))
        self.assertIn('unknown field(s) "%s... (900 characters)"'
                      % ('f' * 80), msg)
        self.assertLess(len(msg), 400)

    def test_long_value_of_another_type(self):
        msg = self._error(GOOD + 'host_mapping:\n  aliases: [%s]\n'
                          % ', '.join(['a'] * 1000))
        # repr: 1000 times 'a' (3 characters each), 999 times ", " and
        # two brackets, 3000 + 1998 + 2 = 5000 characters. The first 80
        # are "[", 15 times "'a', " (75) and "'a',".
        self.assertIn("must be a mapping, got %s... (5000 characters)"
                      % ("[" + "'a', " * 15 + "'a',"), msg)

    def test_long_yaml_error_line(self):
        msg = self._error('policies: *' + 'u' * 3000)
        # PyYAML's line is "found undefined alias '<3000 u>'": 23 + 3000 +
        # 1 = 3024 characters, cut at 160 (23 + 137 u).
        self.assertEqual("p.yaml: not valid YAML: found undefined alias '%s"
                         "... (3024 characters)" % ('u' * 137),
                         msg.splitlines()[0])
        self.assertLess(len(msg), 400)

    def test_error_lines_are_capped(self):
        # 30 policies with an unknown mode and no other field: 7 problems
        # each, 210 in all; 20 are listed, the other 190 counted.
        text = 'policies:\n' + ''.join('  p%02d: {mode: bad}\n' % i
                                       for i in range(30))
        lines = self._error(text).splitlines()
        self.assertEqual(21, len(lines))
        self.assertEqual('p.yaml: and 190 more problem(s)', lines[-1])

    def test_weights_list_is_capped(self):
        policies = ''.join(
            '  p%02d: {mode: spread, weight: 0.1, threshold: 1, host_query: '
            'up, host_label: h, vm_query: up, vm_label: v}\n' % i
            for i in range(12))
        msg = self._error('policies:\n' + policies)
        self.assertIn('sum to 1, got 1.2 (p00=0.1, p01=0.1, p02=0.1, '
                      'p03=0.1, p04=0.1, p05=0.1, p06=0.1, p07=0.1, p08=0.1, '
                      'p09=0.1 and 2 more)', msg)


class TestSettleTime(testtools.TestCase):

    def _policy(self, extra='', **queries):
        text = GOOD.replace('weight: 0.7', 'weight: 0.7' + extra, 1)
        for key, value in queries.items():
            text = text.replace('%s: up' % key, '%s: %s' % (key, value), 1)
        return policy.loads(text, source='p.yaml').get('cpu')

    def _error(self, value):
        e = self.assertRaises(policy.PolicyError, policy.loads,
                              GOOD.replace('weight: 0.7', 'weight: 0.7\n'
                                           '    settle_time: ' + value, 1),
                              source='p.yaml')
        self.assertIn("p.yaml: policy 'cpu': field \"settle_time\"", str(e))
        return str(e)

    def test_declared(self):
        p = self._policy('\n    settle_time: 90')
        self.assertEqual(90.0, p.settle_time)
        self.assertIsInstance(p.settle_time, float)
        self.assertEqual(90.0, p.settle_seconds(15))

    def test_default_is_none(self):
        self.assertIsNone(self._policy().settle_time)

    def test_from_the_queries(self):
        # host: 5 minutes = 300 s; vm: 1h30m = 5400 s; + 15 s scrape.
        p = self._policy(host_query='rate(x[5m])',
                         vm_query='avg_over_time(y[1h30m])')
        self.assertEqual(5415.0, p.settle_seconds(15))
        # Without windows only the scrape interval is left.
        self.assertEqual(30.0, self._policy().settle_seconds(30))

    def test_sample_file(self):
        here = os.path.dirname(__file__)
        ps = policy.load_file(os.path.join(here, '..', '..', 'etc',
                                           'nova-kronos',
                                           'policies.yaml.sample'))
        # cpu: rate(...[5m]) in both queries; memory: plain gauges.
        self.assertEqual(315.0, ps.get('cpu').settle_seconds(15))
        self.assertEqual(15.0, ps.get('memory').settle_seconds(15))

    def test_must_be_positive(self):
        self.assertIn('must be in (0, inf), got 0', self._error('0'))
        self.assertIn('must be in (0, inf), got -5', self._error('-5'))

    def test_must_be_a_number(self):
        self.assertIn("must be a number, got '5m'", self._error('5m'))
        self.assertIn('must be a number, got True', self._error('true'))

    def test_must_be_finite(self):
        self.assertIn('must be a finite number, got inf', self._error('.inf'))
        self.assertIn('must be a finite number, got nan', self._error('.nan'))

    def test_unreadable_window_is_refused_at_load(self):
        e = self.assertRaises(policy.PolicyError, policy.loads,
                              GOOD.replace('vm_query: up', 'vm_query: x[5q]',
                                           1), source='p.yaml')
        self.assertEqual("p.yaml: policy 'cpu': field \"vm_query\": '5q' in "
                         "PromQL 'x[5q]' is not a Prometheus duration; fix "
                         "it or set settle_time", str(e))
        # With settle_time declared the windows are not read.
        p = self._policy('\n    settle_time: 60', vm_query='x[5q]')
        self.assertEqual(60.0, p.settle_seconds(15))

    def test_described_in_schema(self):
        prop = policy.SCHEMA['$defs']['policy']['properties']['settle_time']
        self.assertIn('Seconds', prop['description'])
        self.assertNotIn('settle_time',
                         policy.SCHEMA['$defs']['policy']['required'])


class TestPromqlRangeSeconds(testtools.TestCase):

    def assertSeconds(self, expected, query):
        self.assertEqual(expected, policy.promql_range_seconds(query), query)

    def test_no_window(self):
        self.assertSeconds(0.0, 'up')
        self.assertSeconds(0.0, 'sum by (instance) (node_load1{job="node"})')

    def test_range(self):
        self.assertSeconds(300.0, 'rate(x[5m])')
        self.assertSeconds(5400.0, 'avg_over_time(x[1h30m])')
        self.assertSeconds(300.0, 'rate(x[5m]) / rate(y[2m])')
        self.assertSeconds(90.0, 'rate(x[90s])')

    def test_every_unit(self):
        # 365 d + 14 d + 3 d = 382 d = 33 004 800 s; 4 h = 14 400 s,
        # 5 m = 300 s, 6 s and 7 ms: 33 019 506.007 s.
        self.assertSeconds(33019506.007, 'rate(x[1y2w3d4h5m6s7ms])')
        self.assertSeconds(0.25, 'x[250ms]')
        self.assertSeconds(0.0, 'x[0]')

    def test_subquery(self):
        # Subquery alone: its range, not its step.
        self.assertSeconds(600.0, 'max_over_time(x[10m:1m])')
        self.assertSeconds(600.0, 'max_over_time(x[10m:])')
        # A range inside a subquery: 300 + 600.
        self.assertSeconds(900.0, 'max_over_time(rate(x[5m])[10m:1m])')
        # Two levels: 60 + 300 + 600.
        self.assertSeconds(
            960.0, 'max_over_time(avg_over_time(rate(x[1m])[5m:])[10m:])')
        # Operand is an aggregation, modifier before or after: 120 + 300.
        self.assertSeconds(
            420.0, 'max_over_time(sum by (a) (rate(x[2m]))[5m:])')
        self.assertSeconds(
            420.0, 'max_over_time(sum(rate(x[2m])) by (a)[5m:])')
        self.assertSeconds(
            420.0, 'max_over_time((rate(x[2m]) + 1)[5m:])')

    def test_subquery_does_not_add_to_its_neighbours(self):
        # rate(y[30m]) is beside the subquery, not inside it: max(1800,
        # 60 + 300) = 1800.
        self.assertSeconds(1800.0,
                           'rate(y[30m]) + max_over_time(rate(x[1m])[5m:])')
        # The window before "and" is not in the subquery's operand:
        # max(600, 300).
        self.assertSeconds(600.0, 'rate(y[10m]) and z[5m:]')

    def test_strings_and_comments_are_ignored(self):
        self.assertSeconds(0.0, 'up{job="a[5m]"}')
        self.assertSeconds(0.0, "up{job='a[5m]'}")
        self.assertSeconds(0.0, 'up{job=~`a[5m]`}')
        self.assertSeconds(60.0, 'rate(x{a="\\"[1h]"}[1m])')
        self.assertSeconds(60.0, 'rate(x[1m]) # was [1h]\n')

    def test_sample_queries(self):
        self.assertSeconds(300.0, 'sum by (instance) (rate(\n'
                                  '  node_cpu_seconds_total[5m]))')

    def test_bad_windows(self):
        for query in ('x[5q]', 'x[m5]', 'x[1m1h]', 'x[]', 'x[5m:1q]',
                      'x[1.5m]', 'x[5m'):
            self.assertRaises(ValueError, policy.promql_range_seconds, query)
        e = self.assertRaises(ValueError, policy.promql_range_seconds,
                              'rate(x[5m)')
        self.assertEqual('"[" at character 7 of PromQL \'rate(x[5m)\' is not '
                         'closed', str(e))
