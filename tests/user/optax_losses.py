"""Every per-example loss of `optax.losses` (and jax.nn's) as `check` takes it.

Binary losses are fn(z, y) of one logit and a label in {0, 1}; multiclass losses are
fn(logits, label) of a K-vector and a class index (run with --classes K). Losses on
embeddings or sequences (ntxent, triplet_margin_loss, ctc_loss) and loss builders
(make_fenchel_young_loss) have no per-example logit form and are not here.
"""

import jax
import optax


def _pm(y):
    return 2 * y - 1  # {0, 1} -> {−1, +1}, the targets of the margin losses


def _onehot(label, logits):
    return jax.nn.one_hot(label, logits.shape[-1], dtype=logits.dtype)


# ---- binary: fn(z, y) ----
def sigmoid_binary_cross_entropy(z, y):
    return optax.losses.sigmoid_binary_cross_entropy(z, y)


def sigmoid_focal_loss(z, y):
    return optax.losses.sigmoid_focal_loss(z, y)


def hinge_loss(z, y):
    return optax.losses.hinge_loss(z, _pm(y))


def perceptron_loss(z, y):
    return optax.losses.perceptron_loss(z, _pm(y))


def huber_loss(z, y):
    return optax.losses.huber_loss(z, y)


def l2_loss(z, y):
    return optax.losses.l2_loss(z, y)


def squared_error(z, y):
    return optax.losses.squared_error(z, y)


def log_cosh(z, y):
    return optax.losses.log_cosh(z, y)


def sparsemax_loss(z, y):
    return optax.losses.sparsemax_loss(z, y)


def binary_dice_loss(z, y):
    return optax.losses.binary_dice_loss(z[None, None], y[None, None], apply_sigmoid=True)[0]


def jax_nn_log_sigmoid_bce(z, y):
    return -(y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z))


BINARY = (sigmoid_binary_cross_entropy, sigmoid_focal_loss, hinge_loss, perceptron_loss, huber_loss, l2_loss,
          squared_error, log_cosh, sparsemax_loss, binary_dice_loss, jax_nn_log_sigmoid_bce)


# ---- multiclass: fn(logits, label) ----
def softmax_cross_entropy_with_integer_labels(logits, label):
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits, label)


def softmax_cross_entropy(logits, label):
    return optax.losses.softmax_cross_entropy(logits, _onehot(label, logits))


def safe_softmax_cross_entropy(logits, label):
    return optax.losses.safe_softmax_cross_entropy(logits, _onehot(label, logits))


def smoothed_softmax_cross_entropy(logits, label):
    return optax.losses.softmax_cross_entropy(logits, optax.losses.smooth_labels(_onehot(label, logits), 0.1))


def poly_loss_cross_entropy(logits, label):
    return optax.losses.poly_loss_cross_entropy(logits, _onehot(label, logits))


def multiclass_hinge_loss(logits, label):
    return optax.losses.multiclass_hinge_loss(logits, label).astype(logits.dtype)  # float64 under x64: cast back


def multiclass_perceptron_loss(logits, label):
    return optax.losses.multiclass_perceptron_loss(logits, label).astype(logits.dtype)  # float64 under x64: cast back


def multiclass_sparsemax_loss(logits, label):
    return optax.losses.multiclass_sparsemax_loss(logits[None], label[None])[0].astype(logits.dtype)  # as above


def kl_divergence(logits, label):
    return optax.losses.kl_divergence(jax.nn.log_softmax(logits), optax.losses.smooth_labels(_onehot(label, logits), 0.1))


def kl_divergence_with_log_targets(logits, label):
    log_t = jax.nn.log_softmax(optax.losses.smooth_labels(_onehot(label, logits), 0.1))
    return optax.losses.kl_divergence_with_log_targets(jax.nn.log_softmax(logits), log_t)


def convex_kl_divergence(logits, label):
    return optax.losses.convex_kl_divergence(jax.nn.log_softmax(logits), optax.losses.smooth_labels(_onehot(label, logits), 0.1))


def ranking_softmax_loss(logits, label):
    return optax.losses.ranking_softmax_loss(logits, _onehot(label, logits))


def cosine_distance(logits, label):
    return optax.losses.cosine_distance(logits, _onehot(label, logits))


def multiclass_generalized_dice_loss(logits, label):
    return optax.losses.multiclass_generalized_dice_loss(logits[None], _onehot(label, logits)[None],
                                                         apply_softmax=True)


MULTICLASS = (softmax_cross_entropy_with_integer_labels, softmax_cross_entropy, safe_softmax_cross_entropy,
              smoothed_softmax_cross_entropy, poly_loss_cross_entropy, multiclass_hinge_loss,
              multiclass_perceptron_loss, multiclass_sparsemax_loss, kl_divergence, kl_divergence_with_log_targets,
              convex_kl_divergence, ranking_softmax_loss, cosine_distance, multiclass_generalized_dice_loss)

# optax 0.2.8: jax.grad of multiclass_sparsemax_loss fails under jax_enable_x64 (which a
# float64 row needs): its simplex projection's custom JVP returns a float16 tangent for a
# float64 primal ("Custom JVP rule must produce primal and tangent outputs with
# corresponding shapes and dtypes"). check reports it in one sentence.
FAILS_UNDER_X64 = ("multiclass_sparsemax_loss",)

