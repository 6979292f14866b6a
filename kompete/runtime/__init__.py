"""The runtime: where and how tensors compute (device, mixed precision, memory format, torch.compile, DDP).

Below the algorithms in the data flow (config -> data -> runtime -> algorithm -> train): a Task receives a
`Context` (`context.py`) and never imports the loop. `device.py` reads `--device` for every command.
"""
