"""Order-lifecycle strategies as pure logic: brackets, trailing stops, re-entry, schedules and MTM guards."""
