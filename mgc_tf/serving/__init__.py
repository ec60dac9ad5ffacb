"""Export for TF Serving: the serving signatures and the SavedModel writer.

`signatures.ReconstructionModule` is the graph (encoder + pure-TF face
decoding, no rasterizer op); `export_lib.export_saved_model` writes it from a
training run as EXPORT_DIR/MODEL_NAME/VERSION. The CLI is `mgc_tf.export`.
"""
