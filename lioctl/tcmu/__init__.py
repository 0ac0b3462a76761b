"""TCMU (target_core_user): user backstores whose SCSI commands a userspace handler serves."""
