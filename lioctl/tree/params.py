"""Known attribute/parameter value types, for validation before a write and for completion."""

from __future__ import annotations

from lioctl.errors import LioError
from lioctl.units import parse_bool

BOOL_ATTRS = {
    # storage object attrib/
    "emulate_3pc", "emulate_caw", "emulate_dpo", "emulate_fua_read", "emulate_fua_write",
    "emulate_model_alias", "emulate_pr", "emulate_rest_reord", "emulate_tas", "emulate_tpu",
    "emulate_tpws", "emulate_write_cache", "enforce_pr_isids", "force_pr_aptpl", "is_nonrot",
    "unmap_granularity_alignment", "unmap_zeroes_data", "pi_prot_verify",
    # tpg attrib/
    "authentication", "demo_mode_write_protect", "generate_node_acls", "cache_dynamic_acls",
    "prod_mode_write_protect", "demo_mode_discovery", "t10_pi", "fabric_prot_type_enabled",
    "tpg_enabled_sendtargets", "login_keys_workaround",
    # misc
    "write_protect", "enforce_discovery_auth", "iser", "cxgbit",
}
ENUMS = {
    "HeaderDigest": ["CRC32C,None", "None,CRC32C", "CRC32C", "None"],
    "DataDigest": ["CRC32C,None", "None,CRC32C", "CRC32C", "None"],
    "InitialR2T": ["Yes", "No"], "ImmediateData": ["Yes", "No"],
    "DataPDUInOrder": ["Yes", "No"], "DataSequenceInOrder": ["Yes", "No"],
    "IFMarker": ["Yes", "No"], "OFMarker": ["Yes", "No"],
    "AuthMethod": ["CHAP,None", "None,CHAP", "CHAP", "None"],
    "ErrorRecoveryLevel": ["0", "1", "2"],
    "emulate_ua_intlck_ctrl": ["0", "1", "2"],
    "alua_access_state": ["0", "1", "2", "3", "4", "14", "15"],
}
RANGES = {"MaxConnections": (1, 65535), "MaxRecvDataSegmentLength": (512, 16777215),
          "MaxXmitDataSegmentLength": (512, 16777215), "MaxBurstLength": (512, 16777215),
          "FirstBurstLength": (512, 16777215), "MaxOutstandingR2T": (1, 65535),
          "DefaultTime2Wait": (0, 3600), "DefaultTime2Retain": (0, 3600),
          "block_size": (512, 4096), "queue_depth": (1, 65535)}


# iSCSI's CHAP names and secrets (auth/, discovery_auth/): the kernel unsets one when "NULL"
# is written; rtslib writes that for an empty value and refuses "NULL" itself
CHAP_KEYS = frozenset({"userid", "password", "userid_mutual", "password_mutual"})


def unset_or_value(where: str, group: str, name: str, value: str) -> str:
    """What to write for `group name=value` at `where`. configfs takes no empty write (the
    kernel answers EFAULT, "Bad address"): an empty CHAP value unsets it, as in targetcli;
    any other empty value is refused before anything is written."""
    if name in CHAP_KEYS:
        if value == "NULL":
            raise LioError(f"{where}: {group} {name}: 'NULL' is not a permitted value "
                           "(an empty value unsets it)")
        return value or "NULL"
    if value == "":
        raise LioError(f"{where}: {group} {name}: give a value (configfs takes no empty one)")
    return value


def allowed_values(name: str) -> list[str]:
    if name in BOOL_ATTRS:
        return ["0", "1"]
    return ENUMS.get(name, [])


def normalize_value(name: str, value: str) -> str:
    """Check a value before it is written; booleans accept true/false/yes/no/on/off."""
    if name in BOOL_ATTRS:
        return "1" if parse_bool(value, name) else "0"
    if name in ENUMS and value not in ENUMS[name]:
        raise LioError(f"{name}={value!r} is not one of: {', '.join(ENUMS[name])}")
    if name in RANGES:
        lo, hi = RANGES[name]
        if not value.isdigit() or not lo <= int(value) <= hi:
            raise LioError(f"{name}={value!r} is out of range ({lo}-{hi})")
    if "\n" in value:
        raise LioError(f"{name}: value must not contain a newline")
    return value
