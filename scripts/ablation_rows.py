"""The rows of MGCNet's multi-view ablation (Table 3), as our reports name
them: the flagfile stem of each row -> its label. A method's row is added by
its own flagfile; reports list rows not named here by their stem."""

ROWS = {
    "baseline": "2D losses only (baseline)",
    "pixel": "+ pixel consistency",
    "depth": "+ depth consistency",
    "epipolar": "+ epipolar",
    "full_no_covisible": "full, face mask instead of covisible map",
    "full": "full MGCNet",
    "sir": "full MGCNet + SIR (--sir_weight)",
    "depthnet": "depthnet (Shu et al.; g supervised by ground truth)",
    "pgn": "pgn (Liu et al.; pose solved from PGN landmarks)",
    "robust": "robust (Mohaghegh et al.; self-augmentation, GCN refiners)",
}
