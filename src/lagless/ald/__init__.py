"""Actor-Learner Distillation (Parisotto & Salakhutdinov, ICLR 2021): a transformer learns, an LSTM acts."""
