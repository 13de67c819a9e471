import os
import tempfile

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
