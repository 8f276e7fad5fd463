# The firmware's version: the one place it is written. The pen reports it (INFO's
# fw_version, Device Information's firmware revision: pen/handler.py, pen/app.py)
# and the build (scalppen build) reads this line into the manifest.
VERSION = "0.1.0"
