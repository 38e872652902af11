"""The study room: metrics, looking inside a trained model, figures, the study report, the
live page (`minirnn serve`), the reader (`minirnn read`) and safetensors export."""
