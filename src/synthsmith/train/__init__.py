"""Training and evaluation on the verified data: the reward (`reward`), loading and saving
checkpoints (`models`), the TRL trainers (`trainers`) and pass-rate evaluation (`evaluation`)."""
