# Firmware version, read by the build (scalppen build) into the manifest.
VERSION = "0.1.0"
