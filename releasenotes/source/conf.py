extensions = ['reno.sphinxext']
project = 'nova-kronos Release Notes'
master_doc = 'index'
html_theme = 'alabaster'
