"""What `set` writes for a value: configfs takes no empty write (EFAULT), so an empty CHAP
value becomes the kernel's NULL (unset, as in targetcli) and any other empty value is refused
with the object and the name."""

import pytest

from lioctl.errors import LioError
from lioctl.tree.params import unset_or_value

TPG = "/iscsi/iqn.2003-01.org.example:t1/tpg1"


@pytest.mark.parametrize("name", ["userid", "password", "userid_mutual", "password_mutual"])
def test_an_empty_chap_value_unsets_it_and_null_itself_is_refused(name):
    assert unset_or_value(TPG, "auth", name, "") == "NULL"
    assert unset_or_value(TPG, "auth", name, "alice") == "alice"
    with pytest.raises(LioError, match=rf"^{TPG}: auth {name}: 'NULL' is not a permitted value"):
        unset_or_value(TPG, "auth", name, "NULL")


@pytest.mark.parametrize("group,name", [("attribute", "default_cmdsn_depth"), ("parameter", "TargetAlias"),
                                        ("parameter", "cmd_completion_affinity")])
def test_any_other_empty_value_is_refused_naming_it(group, name):
    with pytest.raises(LioError, match=rf"^{TPG}: {group} {name}: give a value"):
        unset_or_value(TPG, group, name, "")
    assert unset_or_value(TPG, group, name, "NULL") == "NULL"     # not a CHAP value: as given
    assert unset_or_value(TPG, group, name, "0") == "0"
