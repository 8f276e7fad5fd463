"""Physics and failure models of the pen's parts, one small model per file.

Each model is plain Python with no I/O and no clock of its own: the virtual pen
(:mod:`scalppen_hardware.virtual_pen_hw`) steps them in virtual time.
"""

from scalppen_hardware.models.battery import BatteryModel
from scalppen_hardware.models.cartridge import VirtualCartridge
from scalppen_hardware.models.depth_sensor import DepthSensorModel
from scalppen_hardware.models.fuel_gauge import FuelGauge
from scalppen_hardware.models.motor import MotorModel
from scalppen_hardware.models.ntc import NtcModel
from scalppen_hardware.models.oled import CharOled
from scalppen_hardware.models.stepper import StepperModel
from scalppen_hardware.models.thermal import ThermalModel

__all__ = [
    "BatteryModel",
    "CharOled",
    "DepthSensorModel",
    "FuelGauge",
    "MotorModel",
    "NtcModel",
    "StepperModel",
    "ThermalModel",
    "VirtualCartridge",
]
