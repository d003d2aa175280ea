"""KD-LoRA: LoRA fine-tuning of a smaller student encoder with distillation from a fine-tuned teacher."""
