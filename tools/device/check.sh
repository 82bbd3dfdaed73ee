# call 1: what the GPU path needs, then the bench
nvidia-smi -L; python3 -c "import torch, hydra, omegaconf; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -c "import bnopt.train, bnopt.reproduce; print('bnopt imports')" || exit 1
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu_path.py -x 2>&1 | tail -25 | tee $OUT/gpu_tests.log
timeout 300 python3 -m bnopt.bench --seconds 2 --out $OUT/bench.json 2>&1 | grep -v Warning | tail -40
cp $OUT/bench.json /tmp/bench.json 2>/dev/null
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
