#!/usr/bin/env bash
# Train the Tacotron TTS teacher on the demo corpus (skipped when its last.ckpt exists) and dump its teacher-forced
# ("GTA") mels for every split into one folder, the postnet's blurry inputs:
#   bash scripts/teacher_gta.sh                 # GTA mels in runs/tacotron_teacher/gta
#   python scripts/postnet_results.py --gta-dir runs/tacotron_teacher/gta
# Arguments go to all `tts-lab` calls (e.g. --data.root=DIR).
set -euo pipefail
config=configs/tacotron_teacher.yaml
run=runs/tacotron_teacher  # the config's default_root_dir and checkpoint folder
if [ ! -f "$run/checkpoints/last.ckpt" ]; then
  tts-lab fit --config "$config" "$@"
fi
for split in train val test; do
  # No logger: the writer's default folder is then <default_root_dir>/gta for all three splits.
  tts-lab predict --config "$config" --ckpt_path "$run/checkpoints/last.ckpt" --trainer.logger=false \
    --model.init_args.predict_mode=gta --data.predict_split="$split" "$@"
done
echo "$(ls "$run/gta" | wc -l) GTA mels in $run/gta"
