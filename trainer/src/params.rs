//! Parameters by name. burn's module visitors report each parameter's path
//! in the module tree; because the model's fields are named as in
//! transformers, that path is the checkpoint name. Everything that treats
//! parameters one by one (checkpoints, the optimizer, export) goes through
//! the two functions here.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Gradients, Tensor, TensorData};

/// A tensor on the host: f32 values, row-major, with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn from_tensor<const D: usize>(tensor: &Tensor<D>) -> HostTensor {
        let data = tensor.to_data().convert::<f32>();
        HostTensor { shape: data.shape().to_vec(), data: data.try_to_vec::<f32>().unwrap_or_default() }
    }

    pub fn to_data(&self) -> TensorData {
        TensorData::new(self.data.clone(), self.shape.clone())
    }
}

/// A visitor that tracks the module path, so each parameter gets its name.
struct Named<F> {
    path: Vec<String>,
    f: F,
}

impl<F: FnMut(&str, Tensor<1>, &[usize])> ModuleVisitor for Named<F> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let dims = value.dims();
        (self.f)(&self.path.join("."), value.flatten::<1>(0, D - 1), &dims);
    }
}

/// Calls `f(name, flattened value, dims)` for every float parameter, in
/// module order.
pub fn visit_params<M: Module>(module: &M, f: impl FnMut(&str, Tensor<1>, &[usize])) {
    module.visit(&mut Named { path: Vec::new(), f });
}

/// Every float parameter as a host tensor, by name.
pub fn state_dict<M: Module>(module: &M) -> BTreeMap<String, HostTensor> {
    let mut out = BTreeMap::new();
    visit_params(module, |name, value, dims| {
        let mut tensor = HostTensor::from_tensor(&value);
        tensor.shape = dims.to_vec();
        out.insert(name.to_string(), tensor);
    });
    out
}

/// Removes each parameter's gradient from `grads`: flattened, without
/// autodiff, by name. Parameters that got no gradient are absent.
pub fn take_grads<M: Module>(module: &M, grads: &mut Gradients) -> BTreeMap<String, Tensor<1>> {
    struct Taker<'a> {
        path: Vec<String>,
        grads: &'a mut Gradients,
        out: BTreeMap<String, Tensor<1>>,
    }
    impl ModuleVisitor for Taker<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !param.is_require_grad() {
                return;
            }
            if let Some(grad) = param.val().grad_remove(self.grads) {
                self.out.insert(self.path.join("."), grad.flatten::<1>(0, D - 1));
            }
        }
    }
    let mut taker = Taker { path: Vec::new(), grads, out: BTreeMap::new() };
    module.visit(&mut taker);
    taker.out
}

/// Rebuilds every float parameter: `f(name, flattened value, dims)` returns
/// the new flattened value (same length), or `None` to keep it. The new
/// value keeps the parameter's id and whether it requires a gradient.
pub fn map_params<M: Module>(module: M, f: impl FnMut(&str, Tensor<1>, &[usize]) -> Option<Tensor<1>>) -> M {
    struct Mapper<F> {
        path: Vec<String>,
        f: F,
    }
    impl<F: FnMut(&str, Tensor<1>, &[usize]) -> Option<Tensor<1>>> ModuleMapper for Mapper<F> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let name = self.path.join(".");
            let (id, tensor, mapper) = param.consume();
            let dims = tensor.dims();
            let require_grad = tensor.is_require_grad();
            let strategy = tensor.gradient_checkpointing_strategy();
            let flat = tensor.clone().flatten::<1>(0, D - 1);
            let tensor = match (self.f)(&name, flat, &dims) {
                Some(new) => {
                    // The new value may come from the inner device (optimizer
                    // updates are computed without autodiff): give it back the
                    // original's autodiff context (checkpointing strategy included) and leaf status.
                    let mut new = new.reshape(dims).detach();
                    if let Some(strategy) = strategy {
                        new = new.autodiff().with_gradient_checkpointing_strategy(strategy);
                    }
                    if require_grad {
                        new = new.require_grad();
                    }
                    new
                }
                None => tensor,
            };
            Param::from_mapped_value(id, tensor, mapper)
        }
    }
    module.map(&mut Mapper { path: Vec::new(), f })
}
