"""WSGI entry point for the reference Keystone used by the benchmark.

Keystone parses its command line with oslo.config when the application is
built; under gunicorn that command line is gunicorn's own, which oslo.config
rejects. Clearing it first makes Keystone read only the configuration files
named in OS_KEYSTONE_CONFIG_FILES.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
