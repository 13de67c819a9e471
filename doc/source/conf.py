# Sphinx configuration for nova-kronos documentation.
extensions = [
    'sphinx.ext.autodoc',
    'oslo_config.sphinxext',
]
try:
    import openstackdocstheme  # noqa: F401
    extensions.append('openstackdocstheme')
    html_theme = 'openstackdocs'
    openstackdocs_repo_name = 'openstack/nova-kronos'
except ImportError:
    html_theme = 'alabaster'

project = 'nova-kronos'
copyright = '2026, nova-kronos developers'
master_doc = 'index'
exclude_patterns = []
autodoc_mock_imports = []
