"""The sweep engine: a run's plan, the compiled programs, execution call by call
(devices, checkpoints, several processes), and the typed rows it produces."""
