"""SCSI block-device emulation for TCMU commands: everything the kernel passes to userspace."""
