"""One model of the live LIO configuration, read from configfs in a single pass.

`snapshot.read()` gives the objects (backstores, fabrics, targets, TPGs, LUNs, ACLs...);
`nodes` puts targetcli's paths and verbs on top of them. The one-shot CLI, the shell,
completion, --json, save and restore all share it.
"""
