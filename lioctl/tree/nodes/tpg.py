"""What is inside a TPG: LUNs, portals, ACLs and mapped LUNs."""

from __future__ import annotations

import os

from lioctl.backstores import block, common as bsc, fileio
from lioctl.errors import AlreadyExists, Conflict, LioError, NotFound
from lioctl.plan import Plan
from lioctl.tree import targets as tg
from lioctl.tree.snapshot import TPG, Lun, MappedLun, NodeACL, Portal
from lioctl.tree.nodes.base import Node, Result, _b, writes


class LunsNode(Node):
    kind = "luns"

    def __init__(self, ctx, parent, name, tpg: TPG):
        super().__init__(ctx, parent, name)
        self.tpg = tpg

    def children(self):
        return [LunNode(self.ctx, self, f"lun{lun.index}", lun) for lun in self.tpg.luns.values()]

    def summary(self):
        return f"LUNs: {len(self.tpg.luns)}", None

    def exist_ok_create(self, storage_object: str, lun: str | None = None, add_mapped_luns: str | None = None):
        """--exist-ok: the storage object is already a LUN here (at index LUN, if given); its
        index is the result's "lun". Another object at that index is a conflict."""
        snap = self.ctx.snap
        if storage_object.startswith("/backstores/"):
            parts = storage_object.strip("/").split("/")
            so = snap.so(parts[1].split(":")[0], parts[2]) if len(parts) == 3 else None
        else:
            so = bsc.devices_in_use(snap).get(os.path.realpath(os.path.abspath(storage_object)))
        want = tg.check_lun_index(str(lun).removeprefix("lun")) if lun is not None else None
        mine = [x for x in self.tpg.luns.values() if so is not None and x.storage_object is so]
        if want is not None and want in self.tpg.luns:
            there = self.tpg.luns[want]
            other = there.storage_object.tree_path if there.storage_object else "nothing"
            return ("lun", there, [] if there in mine else [f"storage object {other}, not {storage_object}"],
                    {"lun": want})
        if mine and want is None:
            return ("lun", mine[0], [], {"lun": mine[0].index})
        return None

    @writes
    def ui_create(self, storage_object: str, lun: str | None = None, add_mapped_luns: str | None = None):
        """Create a LUN for a backstore path (/backstores/fileio/disk1) or a device/file path
        (a backstore is created for it).
Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/luns create /backstores/fileio/disk1
Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/luns create /srv/disk2.img lun=3 add_mapped_luns=false"""
        snap = self.ctx.snap
        plan = Plan()
        if storage_object.startswith("/backstores/"):
            parts = storage_object.strip("/").split("/")
            if len(parts) != 3:
                raise LioError(f"{storage_object!r} is not a backstore path (/backstores/KIND/NAME)")
            so = snap.so(parts[1].split(":")[0], parts[2])
            if so is None:
                raise NotFound(f"backstore {parts[1]}/{parts[2]} does not exist", obj=storage_object)
        else:
            path = os.path.abspath(storage_object)
            so = bsc.devices_in_use(snap).get(os.path.realpath(path))
        if so is not None:
            bsc.check_enabled(so)
            so_path = so.path
        else:       # a new backstore for the file or device, in the next free HBA of its kind
            name = os.path.basename(path).replace(" ", "_") or "disk"
            kind = block.KIND if os.path.exists(path) and bsc.is_block(path) else fileio.KIND
            if snap.so(kind.name, name):
                raise Conflict(f"backstore {kind.name}/{name} already exists for another path")
            hba = bsc.free_hba(kind)
            plan.extend(block.plan_block(snap, name, path, hba=hba) if kind is block.KIND
                        else fileio.plan_fileio(snap, name, path, hba=hba))
            so_path = bsc.object_path(hba, name)
        amap = self.ctx.pref("auto_add_mapped_luns", True) if add_mapped_luns is None \
            else _b(add_mapped_luns, "add_mapped_luns")
        sub, idx = tg.plan_lun(self.tpg, so_path, lun, add_mapped_luns=bool(amap))
        plan.extend(sub)
        n_acl = len(self.tpg.acls) if amap and self.tpg.target.fabric.has("acls") else 0
        msg = f"Created LUN {idx}." + (f" Created {n_acl} mapped LUN(s)." if n_acl else "")
        return Result(plan=plan, message=msg, data={"lun": idx})

    @writes
    def ui_delete(self, lun: str):
        """Delete LUN (and the mapped LUNs that point at it).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/luns delete lun0"""
        i = tg.check_lun_index(str(lun).removeprefix("lun"))
        if i not in self.tpg.luns:
            raise NotFound(f"LUN {i} does not exist in {self.path}", obj=f"{self.path}/lun{i}")
        return Result(plan=tg.plan_delete_lun(self.tpg.luns[i]), message=f"Deleted LUN {i}.")


class LunNode(Node):
    kind = "lun"

    def __init__(self, ctx, parent, name, lun: Lun):
        super().__init__(ctx, parent, name)
        self.lun = lun

    def summary(self):
        so = self.lun.storage_object
        if so is None:
            return f"{self.lun.so_path or '(no backstore)'}", False
        return f"{so.tree_path} ({so.udev_path or so.plugin})", True

    def info_data(self):
        d = self.lun.to_json()
        d["path"] = self.path
        d["alua_tg_pt_gp"] = self.lun.alua_tg_pt_gp
        return d

    @writes
    def ui_set_alua(self, group: str):
        """Put this LUN in ALUA target port group GROUP of its backstore.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/luns/lun0 set_alua ao_group"""
        so = self.lun.storage_object
        if so is None or group not in so.alua_tpgs:
            raise NotFound(f"{self.path}: no ALUA group {group!r} on its backstore")
        plan = Plan()
        plan.write(self.lun.path + "/alua_tg_pt_gp", group)
        return Result(plan=plan, message=f"{self.path}: ALUA group {group}")


class PortalsNode(Node):
    kind = "portals"

    def __init__(self, ctx, parent, name, tpg: TPG):
        super().__init__(ctx, parent, name)
        self.tpg = tpg

    def children(self):
        return [PortalNode(self.ctx, self, p.name, p) for p in self.tpg.portals.values()]

    def summary(self):
        return f"Portals: {len(self.tpg.portals)}", None

    def exist_ok_create(self, ip_address: str = "0.0.0.0", ip_port: str | None = None):
        text = ip_address if ip_port is None else tg.portal_name(ip_address, ip_port)
        p = self.tpg.portals.get(tg.parse_portal(text)[2])
        return ("portal", p, []) if p else None

    @writes
    def ui_create(self, ip_address: str = "0.0.0.0", ip_port: str | None = None):
        """Create a network portal (IPv4, or IPv6 as ::1 or [::1]; port 3260 by default).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/portals create 192.0.2.10
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/portals create ::1 3261"""
        text = ip_address if ip_port is None else tg.portal_name(ip_address, ip_port)
        plan, name = tg.plan_portal(self.tpg, text)
        return Result(plan=plan, message=f"Created network portal {name}.")

    @writes
    def ui_delete(self, ip_address: str, ip_port: str | None = None):
        """Delete a network portal.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/portals delete 0.0.0.0 3260"""
        text = ip_address if ip_port is None else tg.portal_name(ip_address, ip_port)
        _, _, name = tg.parse_portal(text)
        if name not in self.tpg.portals:
            raise NotFound(f"portal {name} does not exist in {self.path}", obj=f"{self.path}/{name}")
        plan = Plan()
        plan.rmdir(self.tpg.portals[name].path)
        return Result(plan=plan, message=f"Deleted network portal {name}")


class PortalNode(Node):
    kind = "portal"

    def __init__(self, ctx, parent, name, portal: Portal):
        super().__init__(ctx, parent, name)
        self.portal = portal

    def summary(self):
        p = self.portal
        return ("iser" if p.iser else "") + (" offload" if p.offload else "") or "OK", True

    def info_data(self):
        d = self.portal.to_json()
        d["path"] = self.path
        return d

    def _toggle(self, fname, label, on):
        f = f"{self.portal.path}/{fname}"
        if not os.path.exists(f):
            raise LioError(f"{self.path}: {label} is not supported by this kernel")
        plan = Plan()
        plan.write(f, "1" if _b(on, label) else "0")
        return Result(plan=plan, message=f"{self.path}: {label} {'on' if _b(on, label) else 'off'}")

    @writes
    def ui_enable_iser(self, boolean: str):
        """Turn iSER on or off for this portal.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/portals/192.0.2.10:3260 enable_iser true"""
        return self._toggle("iser", "iser", boolean)

    @writes
    def ui_enable_offload(self, boolean: str):
        """Turn cxgbit offload on or off for this portal.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/portals/192.0.2.10:3260 enable_offload false"""
        return self._toggle("cxgbit", "offload", boolean)


class AclsNode(Node):
    kind = "acls"

    def __init__(self, ctx, parent, name, tpg: TPG):
        super().__init__(ctx, parent, name)
        self.tpg = tpg

    def children(self):
        return [AclNode(self.ctx, self, a.wwn, a) for a in self.tpg.acls.values()]

    def summary(self):
        return f"ACLs: {len(self.tpg.acls)}", None

    def exist_ok_create(self, wwn: str, add_mapped_luns: str | None = None, tag: str | None = None):
        from lioctl import wwn as wwnmod
        spec = self.tpg.target.fabric.spec
        w, _ = wwnmod.normalize(spec.wwn_types, wwn, "initiator WWN")
        acl = self.tpg.acls.get(spec.cfs_wwn(w) if spec.colon_wwn else w)
        if acl is None:
            return None
        return ("acl", acl, [f"tag {acl.tag}, not {tag}"] if tag is not None and acl.tag != tag else [])

    @writes
    def ui_create(self, wwn: str, add_mapped_luns: str | None = None, tag: str | None = None):
        """Create an ACL for initiator WWN, mapping every LUN unless add_mapped_luns=false.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls create iqn.1994-05.com.example:client1
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls create iqn.1994-05.com.example:client1 add_mapped_luns=false"""
        amap = self.ctx.pref("auto_add_mapped_luns", True) if add_mapped_luns is None \
            else _b(add_mapped_luns, "add_mapped_luns")
        plan, w = tg.plan_acl(self.tpg, wwn, add_mapped_luns=bool(amap), tag=tag)
        n = len(self.tpg.luns) if amap else 0
        return Result(plan=plan, message=f"Created Node ACL for {w}." +
                      (f" Created {n} mapped LUN(s)." if n else ""))

    @writes
    def ui_delete(self, wwn: str):
        """Delete the ACL for initiator WWN (its sessions are dropped).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls delete iqn.1994-05.com.example:client1"""
        a = self.child(wwn)
        if a is None:
            raise NotFound(f"ACL {wwn} does not exist in {self.path}", obj=f"{self.path}/{wwn}")
        return Result(plan=tg.plan_delete_acl(a.acl), message=f"Deleted Node ACL {a.name}.")

    @writes
    def ui_untag(self, wwn_or_tag: str):
        """Remove the tag of the ACL named WWN_OR_TAG, or of every ACL with that tag, as targetcli's
        untag does; they keep their settings.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls untag db-servers"""
        tagged = [a for a in self.tpg.acls.values() if wwn_or_tag in (a.wwn, a.tag)]
        if not tagged:
            raise NotFound(f"no ACL named or tagged {wwn_or_tag} in {self.path}")
        return _untag_result(self.path, [a for a in tagged if a.tag])


class AclNode(Node):
    kind = "acl"

    def __init__(self, ctx, parent, name, acl: NodeACL):
        super().__init__(ctx, parent, name)
        self.acl = acl

    def children(self):
        return [MappedLunNode(self.ctx, self, f"mapped_lun{m.index}", m)
                for m in self.acl.mapped_luns.values()]

    def summary(self):
        return f"Mapped LUNs: {len(self.acl.mapped_luns)}", None

    def groups(self):
        g = {}
        for name, sub in (("attribute", "attrib"), ("parameter", "param"), ("auth", "auth")):
            if os.path.isdir(f"{self.acl.path}/{sub}"):
                g[name] = f"{self.acl.path}/{sub}"
        return g

    def info_data(self):
        d = self.acl.to_json(self.ctx.show_secrets)
        d["path"] = self.path
        return d

    def exist_ok_create(self, mapped_lun: str, tpg_lun_or_backstore: str, write_protect: str = "false"):
        ml = self.acl.mapped_luns.get(tg.check_lun_index(str(mapped_lun).removeprefix("mapped_lun")))
        if ml is None:
            return None
        src = tpg_lun_or_backstore
        lun = self.acl.tpg.luns.get(ml.tpg_lun)
        same = (lun is not None and lun.storage_object is not None and lun.storage_object.tree_path == src
                if src.startswith("/backstores/") else str(ml.tpg_lun) == src.removeprefix("lun"))
        diffs = [] if same else [f"maps TPG LUN {ml.tpg_lun}, not {src}"]
        if ml.write_protect != _b(write_protect, "write_protect"):
            diffs.append(f"write_protect is {str(ml.write_protect).lower()}")
        return ("mapped_lun", ml, diffs)

    @writes
    def ui_create(self, mapped_lun: str, tpg_lun_or_backstore: str, write_protect: str = "false"):
        """Map TPG LUN (number, lunN, or backstore path) as MAPPED_LUN for this initiator.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:client1 create 0 lun0
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:client1 create 1 /backstores/fileio/disk2 write_protect=true"""
        i = tg.check_lun_index(str(mapped_lun).removeprefix("mapped_lun"))
        if i in self.acl.mapped_luns:
            raise AlreadyExists(f"mapped LUN {i} already exists in {self.path}", obj=f"{self.path}/mapped_lun{i}")
        tpg = self.acl.tpg
        src = tpg_lun_or_backstore
        lun = None
        if src.startswith("/backstores/"):
            lun = next((x for x in tpg.luns.values() if x.storage_object
                        and x.storage_object.tree_path == src.rstrip("/")), None)
        elif src.removeprefix("lun").isdigit():
            lun = tpg.luns.get(int(src.removeprefix("lun")))
        if lun is None:
            raise NotFound(f"{src} is not a LUN of {tpg.tree_path}")
        plan = tg.plan_mapped_lun_at(self.acl.path, i, lun.path, _b(write_protect, "write_protect"))
        return Result(plan=plan, message=f"Created Mapped LUN {i}.")

    @writes
    def ui_delete(self, mapped_lun: str):
        """Delete mapped LUN MAPPED_LUN.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:client1 delete 0"""
        i = tg.check_lun_index(str(mapped_lun).removeprefix("mapped_lun"))
        if i not in self.acl.mapped_luns:
            raise NotFound(f"mapped LUN {i} does not exist in {self.path}", obj=f"{self.path}/mapped_lun{i}")
        return Result(plan=tg.plan_delete_mapped_lun(self.acl.mapped_luns[i]),
                      message=f"Deleted Mapped LUN {i}.")

    @writes
    def ui_set_tag(self, tag: str):
        """Tag this ACL (ACLs with the same tag share settings in targetcli's model).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:client1 set_tag group1"""
        plan = Plan()
        plan.write(self.acl.path + "/tag", tag)
        return Result(plan=plan, message=f"{self.path}: tag {tag}")

    @writes
    def ui_untag(self):
        """Remove this ACL's tag (targetcli's untag); its settings stay.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:c1 untag"""
        return _untag_result(self.path, [self.acl] if self.acl.tag else [])


def _untag_result(where: str, acls: list[NodeACL]) -> Result:
    """The kernel clears a node ACL's tag when "NULL" is written to it (as rtslib does)."""
    plan = Plan()
    for a in acls:
        plan.write(a.path + "/tag", "NULL")
    names = ", ".join(a.wwn for a in acls)
    return Result(plan=plan, data={"untagged": [a.wwn for a in acls]},
                  message=f"{where}: untagged {names}" if acls else f"{where}: no tag to remove")


class MappedLunNode(Node):
    kind = "mapped-lun"

    def __init__(self, ctx, parent, name, ml: MappedLun):
        super().__init__(ctx, parent, name)
        self.ml = ml

    def summary(self):
        return f"lun{self.ml.tpg_lun} ({'ro' if self.ml.write_protect else 'rw'})", True

    def info_data(self):
        d = self.ml.to_json()
        d["path"] = self.path
        return d

    @writes
    def ui_set_write_protect(self, boolean: str):
        """Make this mapping read-only (true) or read-write (false).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:client1/mapped_lun0 set_write_protect true"""
        plan = Plan()
        plan.write(self.ml.path + "/write_protect", "1" if _b(boolean, "write_protect") else "0")
        return Result(plan=plan, message=f"{self.path}: write_protect {boolean}")
