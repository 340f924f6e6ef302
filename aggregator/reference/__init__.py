"""Reference data: markets and programs, interval meter data, energy prices, retail tariffs, holidays."""
