"""SIFT-Masks (arXiv 2504.04626): finetune every task with its task vector sign-fixed to one public
random sign vector, so task vectors add without cancelling, each task's mask is local (where its
vector is non-zero), and unlearning a task is a subtraction."""
