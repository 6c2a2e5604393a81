"""Root conftest: pytester for the plugin's own tests.

zmqtest itself is loaded through its pytest11 entry point (pip install), never from
here: registering it twice makes pluggy fail with "Plugin already registered".
"""

pytest_plugins = ["pytester"]
