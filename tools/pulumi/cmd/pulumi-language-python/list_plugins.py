"""Print, as a JSON list, the Pulumi resource plugins that installed packages declare.

A Pulumi provider package ships `pulumi-plugin.json` inside its top-level module
({"resource": true, "name": "aws", "version": "7.51.1", "server": ...}).
"""

import json
import sys
from importlib import metadata

plugins = {}
for dist in metadata.distributions():
    for file in dist.files or ():
        parts = file.parts
        if len(parts) == 2 and parts[1] == "pulumi-plugin.json":
            try:
                declared = json.loads(file.read_text() or "{}")
            except (OSError, ValueError):
                continue
            if not declared.get("resource", False):
                continue
            name = declared.get("name") or parts[0].removeprefix("pulumi_").replace("_", "-")
            version = declared.get("version") or dist.version
            if not version.startswith("v"):
                version = "v" + version
            plugins[name] = {"name": name, "version": version, "server": declared.get("server", "")}

json.dump(sorted(plugins.values(), key=lambda p: p["name"]), sys.stdout)
