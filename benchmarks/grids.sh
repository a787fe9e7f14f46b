#!/usr/bin/env bash
# The benchmark grids whose results are committed under benchmarks/results/, one name each (benchmarks/README.md
# says what each answers). Every grid is resumable: finished cells are skipped, a cell cut off midway continues
# from its newest checkpoint. Cells run as single-thread processes, JOBS at a time (2 keeps both cores of a
# 2-core machine busy); set DEVICE=cuda to train on a GPU.
#   bash benchmarks/grids.sh baselines-lastfm     # all 8 models on LastFM, seeds 42-44
#   DATA=../shared/data JOBS=1 bash benchmarks/grids.sh studies-c
#   SEEDS=42 bash benchmarks/grids.sh cold-start-beauty   # the first seed of every cell before the others
#   ORDER=shortest bash benchmarks/grids.sh baselines-toys  # the most cells finished soonest (default: longest
#                                                           # first, so the whole grid ends soonest)
set -euo pipefail
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
JOBS=${JOBS:-2}
DEVICE=${DEVICE:-cpu}
RESULTS=benchmarks/results
ORDER=${ORDER:-longest}  # bsarec benchmark --order: longest, shortest or given
THREADS=${THREADS:-1}  # torch threads per cell: 1 beside JOBS=2, 2 for one cell alone on a 2-core machine
# the committed tables are fp32, the papers' arithmetic, whatever the machine's default (a grid's own
# --set precision=bf16 comes later and wins); PRECISION=auto trains in bf16 where the CPU computes it
PRECISION=${PRECISION:-fp32}
grid() {
  "$BIN/bsarec" benchmark --data-dir "$DATA" --jobs "$JOBS" --threads "$THREADS" --device "$DEVICE" \
    --order "$ORDER" --set precision="$PRECISION" "$@"
}
paper_runs="--runs benchmarks/runs/baselines"
seeds() { echo "${SEEDS:-$1}"; }  # a grid's seeds, or the SEEDS given (a subset: results of the others are kept)

# The grids sit in one function that is called on the last line: bash reads the whole script before it
# trains anything, so editing this file while a grid runs cannot break that grid.
main() {
case "${1:-}" in
  baselines-lastfm)  # the paper's table on LastFM: BSARec, the seven baselines, TV-Rec and WEARec
    grid -d LastFM -m bsarec,caser,gru4rec,sasrec,bert4rec,fmlprec,duorec,fearec,tvrec,wearec --seeds 42,43,44 \
      $paper_runs --output $RESULTS/baselines/LastFM ;;
  baselines-beauty)  # BSARec against SASRec, FMLPRec, FEARec, TV-Rec and WEARec on Beauty
    grid -d Beauty -m bsarec,sasrec,fmlprec,fearec,tvrec,wearec --seeds 42,43,44 --set checkpoint_steps=100 \
      $paper_runs --output $RESULTS/baselines/Beauty ;;
  baselines-beauty-rest)  # the four baselines Beauty's table lacks, into the same results: all ten models
    grid -d Beauty -m duorec,caser,gru4rec,bert4rec --seeds $(seeds 42,43,44) --set checkpoint_steps=100 \
      $paper_runs --output $RESULTS/baselines/Beauty ;;
  baselines-toys)  # the paper's table on Toys_and_Games: 3 seeds of the models the paper compares most closely,
    # seed 42 of Caser, GRU4Rec and BERT4Rec (TV-Rec and WEARec published no Toys setting: their defaults)
    toys="-d Toys_and_Games --set checkpoint_steps=100 $paper_runs --output $RESULTS/baselines/Toys_and_Games"
    grid $toys -m bsarec,sasrec,fmlprec,tvrec,wearec,duorec,fearec --seeds $(seeds 42,43,44)
    grid $toys -m caser,gru4rec,bert4rec --seeds 42 ;;
  baselines-sports-yelp)  # Sports_and_Outdoors and Yelp: seeds 43-44 of the models run at 42, the other
    # baselines at 42-44 (Caser, GRU4Rec, BERT4Rec at 42), so both tables have every model
    sy="-d Sports_and_Outdoors,Yelp --set checkpoint_steps=100"
    grid $sy -m bsarec,tvrec,wearec --seeds $(seeds 42,43,44) $paper_runs --output $RESULTS/baselines/Sports_Yelp
    grid $sy -m sasrec --set loss=ce --seeds $(seeds 42,43,44) $paper_runs --output $RESULTS/sasrec_ce/Sports_Yelp
    grid $sy -m sasrec,fmlprec,duorec,fearec --seeds $(seeds 42,43,44) $paper_runs \
      --output $RESULTS/baselines/Sports_Yelp
    grid $sy -m caser,gru4rec,bert4rec --seeds 42 $paper_runs --output $RESULTS/baselines/Sports_Yelp ;;
  sasrec-ce-lastfm)  # SASRec trained with full cross-entropy, as BSARec is
    grid -d LastFM -m bsarec,sasrec --set loss=ce --seeds 42,43,44 $paper_runs --output $RESULTS/sasrec_ce/LastFM ;;
  padding-lastfm)  # BSARec with cyclic instead of zero padding
    grid -d LastFM -m bsarec --set padding=cyclic --seeds 42,43,44 --runs benchmarks/runs/padding \
      --output $RESULTS/padding ;;
  sampled-softmax-beauty)  # BSARec with 1000 popularity-sampled, logQ-corrected negatives per batch
    grid -d Beauty -m bsarec --seeds 42 --set softmax_negatives=1000 --set softmax_sampler=popularity \
      --runs benchmarks/runs/sampled_softmax --output $RESULTS/sampled_softmax ;;
  studies-c)  # BSARec's c on LastFM (alpha 0.9) and Beauty (alpha 0.7), seed 42
    for c in 1 5 7 9; do
      grid -d LastFM -m bsarec --set c=$c --seeds 42 --runs benchmarks/runs/studies --output $RESULTS/studies/c$c
    done
    for c in 1 3 9; do
      grid -d Beauty -m bsarec --set c=$c --seeds 42 --set checkpoint_steps=100 --runs benchmarks/runs/studies \
        --output $RESULTS/studies/beauty_c$c
    done ;;
  studies-alpha)  # BSARec's alpha on LastFM (c 3), seed 42
    for alpha in 0.1 0.3 0.5 0.7; do
      grid -d LastFM -m bsarec --set alpha=$alpha --seeds 42 --runs benchmarks/runs/studies \
        --output $RESULTS/studies/alpha$alpha
    done ;;
  studies-max-len)  # longer windows for BSARec and SASRec on LastFM, seed 42; at 200 also BSARec with c 9, whose
    # low-pass band (c//2+1 = 5 of 101 bins) keeps the periods that c 3 keeps at the paper's window of 50 (2 of 26)
    for len in 100 200; do
      grid -d LastFM -m bsarec,sasrec --set max_len=$len --seeds 42 --runs benchmarks/runs/studies \
        --output $RESULTS/studies/max_len$len
    done
    grid -d LastFM -m bsarec --set max_len=200 --set c=9 --seeds 42 --runs benchmarks/runs/studies \
      --output $RESULTS/studies/max_len200_c9 ;;
  studies-padding)  # BSARec with cyclic padding on LastFM and Beauty, seed 42: validation scores for --preset best
    grid -d LastFM -m bsarec --set padding=cyclic --seeds 42 --runs benchmarks/runs/studies \
      --output $RESULTS/studies/padding_cyclic
    grid -d Beauty -m bsarec --set padding=cyclic --seeds 42 --set checkpoint_steps=100 \
      --runs benchmarks/runs/studies --output $RESULTS/studies/beauty_padding_cyclic ;;
  studies-patience)  # BSARec with patience 20 instead of 10 on LastFM and Beauty, seed 42: validation scores for
    # --preset best; TV-Rec with patience 20 on Sports_and_Outdoors: does its published run's later stop explain its gap
    grid -d LastFM -m bsarec --set patience=20 --seeds 42 --runs benchmarks/runs/studies \
      --output $RESULTS/studies/patience20
    grid -d Beauty -m bsarec --set patience=20 --seeds 42 --set checkpoint_steps=100 \
      --runs benchmarks/runs/studies --output $RESULTS/studies/beauty_patience20
    grid -d Sports_and_Outdoors -m tvrec --set patience=20 --seeds 42 --set checkpoint_steps=100 \
      --runs benchmarks/runs/studies --output $RESULTS/studies/sports_tvrec_patience20 ;;
  studies-lr)  # BSARec with lr 1e-3 instead of the paper's 5e-4 on Beauty, seed 42: a validation score for --preset best
    grid -d Beauty -m bsarec --set lr=0.001 --seeds 42 --set checkpoint_steps=100 \
      --runs benchmarks/runs/studies --output $RESULTS/studies/beauty_lr0.001 ;;
  studies-dropout)  # BSARec with less dropout (hidden and attention) on Yelp (0.1, TV-Rec's Yelp setting) and
    # Sports_and_Outdoors (0.3), seed 42: validation scores for --preset best beside the reproduction's 0.5
    grid -d Yelp -m bsarec --set hidden_dropout=0.1 --set attn_dropout=0.1 --seeds 42 --set checkpoint_steps=100 \
      --runs benchmarks/runs/studies --output $RESULTS/studies/yelp_dropout0.1
    grid -d Sports_and_Outdoors -m bsarec --set hidden_dropout=0.3 --set attn_dropout=0.3 --seeds 42 \
      --set checkpoint_steps=100 --runs benchmarks/runs/studies --output $RESULTS/studies/sports_dropout0.3 ;;
  frontier-sports-yelp)  # BSARec, TV-Rec and WEARec on the paper's other datasets, SASRec (CE) as reference
    grid -d Sports_and_Outdoors,Yelp -m bsarec,tvrec,wearec --seeds 42 --set checkpoint_steps=100 \
      $paper_runs --output $RESULTS/baselines/Sports_Yelp
    grid -d Sports_and_Outdoors,Yelp -m sasrec --set loss=ce --seeds 42 --set checkpoint_steps=100 \
      $paper_runs --output $RESULTS/sasrec_ce/Sports_Yelp ;;
  item-features-lastfm)  # BSARec and SASRec (CE) with LastFM's S3-Rec attributes (tags) as item features
    grid -d LastFM -m bsarec --set item_features=attributes --seeds 42,43,44 --runs benchmarks/runs/item_features \
      --output $RESULTS/item_features/LastFM/bsarec
    grid -d LastFM -m sasrec --set loss=ce --set item_features=attributes --seeds 42,43,44 \
      --runs benchmarks/runs/item_features --output $RESULTS/item_features/LastFM/sasrec_ce ;;
  item-features-beauty)  # BSARec and SASRec (CE) with Beauty's S3-Rec attributes (categories and brand)
    beauty="-d Beauty --seeds $(seeds 42,43,44) --set checkpoint_steps=100"
    grid $beauty -m bsarec --set item_features=attributes --runs benchmarks/runs/item_features \
      --output $RESULTS/item_features/Beauty/bsarec
    grid $beauty -m sasrec --set loss=ce $paper_runs --output $RESULTS/sasrec_ce/Beauty
    grid $beauty -m sasrec --set loss=ce --set item_features=attributes --runs benchmarks/runs/item_features \
      --output $RESULTS/item_features/Beauty/sasrec_ce ;;
  cold-start-lastfm|cold-start-beauty)  # 10% of the items withheld from training: BSARec with ids, features or both
    data=LastFM; [ "$1" = cold-start-beauty ] && data=Beauty
    cold="--set cold_items=0.1 --set checkpoint_steps=100 --seeds $(seeds 42,43,44) --runs benchmarks/runs/cold_start"
    grid -d $data -m bsarec $cold --set item_features=attributes --set features_only=true \
      --output $RESULTS/cold_start/$data/features_only
    grid -d $data -m bsarec $cold --set item_features=attributes --output $RESULTS/cold_start/$data/ids_features
    grid -d $data -m bsarec $cold --output $RESULTS/cold_start/$data/ids
    # ids + features with the id part of half the items left out at each step (DropoutNet's idea)
    grid -d $data -m bsarec $cold --set item_features=attributes --set id_dropout=0.5 \
      --output $RESULTS/cold_start/$data/ids_features_id_dropout ;;
  precision-beauty)  # the same gate on Beauty: BSARec and TV-Rec, seed 42 (JOBS=1 THREADS=2: ~30 min a cell)
    grid -d Beauty -m bsarec,tvrec --set precision=bf16 --seeds $(seeds 42) --set checkpoint_steps=100 \
      --runs benchmarks/runs/precision_bf16 --output $RESULTS/precision/Beauty_bf16 ;;
  precision-lastfm)  # bf16 autocast against fp32 (the paper grid's cells): the accuracy gate of a bf16 default
    grid -d LastFM -m bsarec,sasrec,tvrec,wearec,fearec --set precision=bf16 --seeds $(seeds 42,43,44) \
      --runs benchmarks/runs/precision_bf16 --output $RESULTS/precision/LastFM_bf16 ;;
  frontier-max-len-lastfm)  # TV-Rec and WEARec at max_len 200 (--preset best's window for BSARec on LastFM), their
    # released settings otherwise: the successors at the window BSARec was given
    grid -d LastFM -m tvrec,wearec --set max_len=200 --seeds $(seeds 42,43,44) --runs benchmarks/runs/frontier_max_len \
      --output $RESULTS/frontier_max_len200/LastFM ;;
  best-candidates)  # bsarec's best recommender for DATASET (default LastFM), chosen on validation alone: the
    # staged search of benchmarks/choose_best.py (every model, then max_len 200, then item attributes), seed 42,
    # one stage's missing cells at a time; a cell another grid already ran with the same settings counts
    d=${DATASET:-LastFM}; last=""
    while stage=$("$BIN/python" benchmarks/choose_best.py -d "$d" --next-stage); do
      [ "$stage" != "$last" ] || { echo "best-candidates: $stage left no validation score" >&2; exit 1; }
      grid -d "$d" --seeds 42 --set checkpoint_steps=100 --runs benchmarks/runs/candidates $stage; last=$stage
    done ;;
  best-recommender)  # DATASET's chosen recommender (best-candidates first) at seeds 42-44: its test numbers
    d=${DATASET:-LastFM}
    # (its seeds 42-44 that no grid has run yet: the search's own seed-42 run counts)
    winner=$("$BIN/python" benchmarks/choose_best.py -d "$d" --winner)
    [ -n "$winner" ] || { echo "best-recommender: every seed of $d's recommender is recorded" >&2; exit 0; }
    grid -d "$d" $winner --set checkpoint_steps=100 --runs benchmarks/runs/best_recommender \
      --output $RESULTS/best_recommender/$d ;;
  best-lastfm)  # BSARec with --preset best (chosen on validation, src/bsarec/presets/best.json), 3 seeds
    grid -d LastFM -m bsarec --preset best --seeds 42,43,44 --runs benchmarks/runs/best \
      --output $RESULTS/best/LastFM ;;
  *)
    echo "usage: bash benchmarks/grids.sh baselines-lastfm|baselines-beauty|baselines-beauty-rest|baselines-toys|" \
      "baselines-sports-yelp|sasrec-ce-lastfm|padding-lastfm|" \
      "sampled-softmax-beauty|studies-c|studies-alpha|studies-max-len|studies-padding|studies-patience|studies-lr|" \
      "studies-dropout|" \
      "frontier-sports-yelp|frontier-max-len-lastfm|best-candidates|best-recommender|best-lastfm|" \
      "item-features-lastfm|item-features-beauty|cold-start-lastfm|cold-start-beauty|precision-lastfm|" \
      "precision-beauty" >&2
    exit 2 ;;
esac
}

main "$@"; exit
