"""lioctl: manage the Linux SCSI target (LIO) through configfs."""

__version__ = "0.1.0"
