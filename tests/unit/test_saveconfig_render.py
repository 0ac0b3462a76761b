"""store.render must write exactly what json.dumps(indent=2, sort_keys=True) writes."""

import json
import random

from lioctl.saveconfig import store


def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["str", "int", "float", "bool", "none"] + (["dict", "list"] * 2 if depth < 4 else [])
    k = rng.choice(kinds)
    if k == "str":
        return "".join(rng.choice("ab \"\\/\n\t\x01é€😀:%'@") for _ in range(rng.randrange(8)))
    if k == "int":
        return rng.choice([0, -1, 2**70, rng.randrange(-10**6, 10**6)])
    if k == "float":
        return rng.choice([0.1, -2.5e300, 1e-7, 3.0])
    if k == "bool":
        return rng.random() < 0.5
    if k == "none":
        return None
    if k == "dict":
        return {f"k{rng.randrange(50)}é": _random_value(rng, depth + 1)
                for _ in range(rng.randrange(5))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(5))]


def test_render_equals_json_dumps_on_random_documents():
    rng = random.Random(7)
    for _ in range(2000):
        doc = {"storage_objects": _random_value(rng), "targets": [_random_value(rng)], "x": _random_value(rng)}
        assert store.render(doc) == json.dumps(doc, indent=2, sort_keys=True) + "\n"


def test_render_leaves_unusual_values_to_the_standard_library():
    for doc in ({"a": float("nan")}, {"a": [float("inf")]}, {"a": {1: "int key"}}):
        assert store.render(doc) == json.dumps(doc, indent=2, sort_keys=True) + "\n"


def test_render_of_a_saveconfig_shape():
    doc = {"fabric_modules": [], "storage_objects": [{"attributes": {"block_size": 512}, "name": "d1",
                                                       "plugin": "fileio", "write_back": True,
                                                       "alua_tpgs": [], "dev": "/srv/a b.img"}],
           "targets": [{"tpgs": [{"luns": [], "node_acls": [{"mapped_luns": [{"index": 0}]}]}]}]}
    assert store.render(doc) == json.dumps(doc, indent=2, sort_keys=True) + "\n"
