//! Braze Currents import (being written).
